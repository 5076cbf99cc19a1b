package dev.stowage.engine.replication.net;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class PayloadBuffersTest {
    private final PayloadBuffers pool = new PayloadBuffers();

    private static int alignment(ByteBuf b) {
        ByteBuffer nio = b.nioBuffer(0, b.capacity());
        return nio.alignmentOffset(nio.position(), 4096);
    }

    @Test
    void buffersHoldExactlyTheLengthAskedAndStartOnA4KiBBoundary() {
        for (int length : new int[] {1, 4096, 65_536, 65_537, 100_000, 1 << 20, Frame.MAX_PAYLOAD}) {
            ByteBuf b = pool.take(length);
            try {
                assertEquals(length, b.capacity(), "capacity for " + length);
                assertEquals(length, b.maxCapacity(), "max capacity for " + length);
                assertEquals(0, b.readableBytes(), "a taken buffer starts empty");
                assertEquals(0, alignment(b), "alignment for " + length);
                b.writerIndex(length);
                b.setByte(length - 1, 7); // the last byte is ours
            } finally {
                b.release();
            }
        }
        assertEquals(0, pool.outstanding());
    }

    @Test
    void aReleasedBufferIsReusedForThePayloadsOfItsSizeClass() {
        ByteBuf first = pool.take(1 << 20);
        first.writeBytes(new byte[1 << 20]);
        long address = first.nioBuffer().duplicate().alignmentOffset(0, 1 << 30);
        first.release();
        ByteBuf second = pool.take((1 << 20) - 4096); // the same class: (512 KiB, 1 MiB]
        try {
            assertEquals(address, second.nioBuffer(0, second.capacity()).alignmentOffset(0, 1 << 30),
                    "the released memory came back");
            assertEquals(0, second.readableBytes());
        } finally {
            second.release();
        }
        assertEquals(1 << 20, pool.keptBytes());
    }

    @Test
    void keptMemoryIsBoundedPerSizeClass() {
        List<ByteBuf> taken = new ArrayList<>();
        for (int i = 0; i < 24; i++) {
            taken.add(pool.take(1 << 20));
        }
        assertEquals(24, pool.outstanding());
        taken.forEach(ByteBuf::release);
        assertEquals(0, pool.outstanding());
        assertEquals(PayloadBuffers.KEPT_BYTES_PER_CLASS, pool.keptBytes());
    }

    @Test
    void lengthsOutsideAFramesPayloadAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> pool.take(0));
        assertThrows(IllegalArgumentException.class, () -> pool.take(Frame.MAX_PAYLOAD + 1));
    }
}
