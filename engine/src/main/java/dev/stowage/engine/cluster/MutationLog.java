package dev.stowage.engine.cluster;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.function.Consumer;
import java.util.zip.CRC32C;

/**
 * The embedded store's append-only log of mutations since its last snapshot.
 *
 * <p>Format: a sequence of records, each {@code int payloadLength, int crc32c(payload), payload}
 * (big-endian), the payload encoded by {@link LogRecord}. Every append is forced to the device
 * before it returns, so only the last record can be torn by a crash. On open, a bad record that
 * reaches the end of the file (its declared length runs past the end, its checksum fails on the
 * last bytes, or only zeros follow) is taken for a torn write and truncated away; a bad record with
 * intact records after it is corruption and the open fails, naming the offset.
 *
 * <p>Threading: not thread-safe; the store uses it from its writer thread only (and while opening).
 */
final class MutationLog implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(MutationLog.class);
    static final int HEADER_BYTES = 8;
    /** Largest payload accepted; keys and values are limited well below it by the store. */
    static final int MAX_PAYLOAD = 8 << 20;

    private final Path path;
    private final FileChannel channel;
    private long size;

    private MutationLog(Path path, FileChannel channel, long size) {
        this.path = path;
        this.channel = channel;
        this.size = size;
    }

    /**
     * Opens (creating if needed) the log at {@code path}, passes every intact record to
     * {@code replay} in file order, and truncates a torn tail.
     *
     * @throws IOException on I/O errors or when the log is corrupt before its tail
     */
    static MutationLog open(Path path, Consumer<LogRecord> replay) throws IOException {
        FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
        try {
            long fileSize = channel.size();
            if (fileSize > Integer.MAX_VALUE) {
                throw new IOException("metadata log " + path + " is " + fileSize + " bytes, beyond any size"
                        + " the store writes; refusing to open");
            }
            ByteBuffer all = ByteBuffer.allocate((int) fileSize);
            while (all.hasRemaining() && channel.read(all, all.position()) >= 0) {
                // read until full
            }
            all.flip();
            long good = replayRecords(path, all, replay);
            if (good < fileSize) {
                log.warn("metadata log {}: dropping a torn last record ({} bytes at offset {})", path,
                        fileSize - good, good);
                channel.truncate(good);
                channel.force(true);
            }
            return new MutationLog(path, channel, good);
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    private static long replayRecords(Path path, ByteBuffer all, Consumer<LogRecord> replay) throws IOException {
        int limit = all.limit();
        CRC32C crc = new CRC32C();
        while (all.position() < limit) {
            int start = all.position();
            if (limit - start < HEADER_BYTES) {
                return start; // torn header
            }
            int length = all.getInt(start);
            int checksum = all.getInt(start + 4);
            boolean lengthValid = length > 0 && length <= MAX_PAYLOAD;
            if (lengthValid && (long) start + HEADER_BYTES + length > limit) {
                return start; // torn payload
            }
            boolean crcValid = false;
            if (lengthValid) {
                crc.reset();
                crc.update(all.slice(start + HEADER_BYTES, length));
                crcValid = (int) crc.getValue() == checksum;
            }
            if (!crcValid) {
                boolean atTail = lengthValid && start + HEADER_BYTES + length == limit;
                if (atTail || onlyZerosFrom(all, start)) {
                    return start;
                }
                throw new IOException("metadata log " + path + " is corrupt at offset " + start
                        + " (" + (lengthValid ? "checksum mismatch" : "invalid record length " + length)
                        + ") with intact data after it; refusing to open");
            }
            LogRecord record;
            try {
                record = LogRecord.decode(all.slice(start + HEADER_BYTES, length));
            } catch (IllegalArgumentException e) {
                throw new IOException("metadata log " + path + ": undecodable record at offset " + start
                        + ": " + e.getMessage(), e);
            }
            replay.accept(record);
            all.position(start + HEADER_BYTES + length);
        }
        return limit;
    }

    private static boolean onlyZerosFrom(ByteBuffer all, int start) {
        for (int i = start; i < all.limit(); i++) {
            if (all.get(i) != 0) {
                return false;
            }
        }
        return true;
    }

    /** Appends one record and forces it (data and file size) to the device before returning. */
    void append(LogRecord record) throws IOException {
        byte[] payload = LogRecord.encode(record);
        if (payload.length > MAX_PAYLOAD) {
            throw new IllegalArgumentException("record of " + payload.length + " bytes exceeds " + MAX_PAYLOAD);
        }
        CRC32C crc = new CRC32C();
        crc.update(payload);
        ByteBuffer buffer = ByteBuffer.allocate(HEADER_BYTES + payload.length);
        buffer.putInt(payload.length).putInt((int) crc.getValue()).put(payload).flip();
        long position = size;
        while (buffer.hasRemaining()) {
            position += channel.write(buffer, position);
        }
        // force(false) is fdatasync: it also persists the new file size needed to read the record.
        channel.force(false);
        size = position;
    }

    /** Empties the log after its records were captured by a durable snapshot. */
    void reset() throws IOException {
        channel.truncate(0);
        channel.force(true);
        size = 0;
    }

    long size() { return size; }

    Path path() { return path; }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
