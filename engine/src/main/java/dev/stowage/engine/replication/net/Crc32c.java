package dev.stowage.engine.replication.net;

import io.netty.buffer.ByteBuf;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

/** crc32c of buffers without copying them (java.util.zip.CRC32C over NIO views). Thread-safe. */
final class Crc32c {
    private Crc32c() {}

    /** crc32c of the readable bytes of {@code buf}; indexes are not changed. 0 for an empty buffer. */
    static int of(ByteBuf buf) {
        if (!buf.isReadable()) {
            return 0;
        }
        CRC32C crc = new CRC32C();
        if (buf.nioBufferCount() == 1) {
            crc.update(buf.nioBuffer());
        } else {
            for (ByteBuffer b : buf.nioBuffers()) {
                crc.update(b);
            }
        }
        return (int) crc.getValue();
    }

    /** crc32c of the remaining bytes of {@code buf}; its position is not changed. */
    static int of(ByteBuffer buf) {
        if (!buf.hasRemaining()) {
            return 0;
        }
        CRC32C crc = new CRC32C();
        crc.update(buf.duplicate());
        return (int) crc.getValue();
    }
}
