package dev.stowage.engine.cluster;

import dev.stowage.engine.cluster.MetadataStore.Versioned;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * One mutation of the embedded store as written to its log, and the binary encoding shared by the
 * log and the snapshot. Encoding (big-endian): a type byte, then for a put
 * {@code modRevision, createRevision, leaseId, key, value} and for a delete {@code revision, key};
 * strings and byte arrays are an int length followed by the bytes (UTF-8 for strings).
 */
sealed interface LogRecord {
    byte PUT = 1;
    byte DELETE = 2;

    /** The store revision this mutation created. */
    long revision();

    /** A key written; {@code entry.modRevision()} is the record's revision. */
    record Put(Versioned entry) implements LogRecord {
        @Override
        public long revision() { return entry.modRevision(); }
    }

    /** A key deleted at {@code revision}. */
    record Delete(String key, long revision) implements LogRecord {}

    static byte[] encode(LogRecord record) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(64);
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            if (record instanceof Put put) {
                out.writeByte(PUT);
                writeEntry(out, put.entry());
            } else if (record instanceof Delete delete) {
                out.writeByte(DELETE);
                out.writeLong(delete.revision());
                writeString(out, delete.key());
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e); // cannot happen on a byte array
        }
        return bytes.toByteArray();
    }

    /** Decodes one payload; throws {@link IllegalArgumentException} when it is malformed. */
    static LogRecord decode(ByteBuffer payload) {
        try {
            byte type = payload.get();
            LogRecord record = switch (type) {
                case PUT -> new Put(readEntry(payload));
                case DELETE -> {
                    long revision = payload.getLong();
                    yield new Delete(readString(payload), revision);
                }
                default -> throw new IllegalArgumentException("unknown record type " + type);
            };
            if (payload.hasRemaining()) {
                throw new IllegalArgumentException(payload.remaining() + " trailing bytes after record");
            }
            return record;
        } catch (BufferUnderflowException e) {
            throw new IllegalArgumentException("record is truncated", e);
        }
    }

    static void writeEntry(DataOutputStream out, Versioned entry) throws IOException {
        out.writeLong(entry.modRevision());
        out.writeLong(entry.createRevision());
        out.writeLong(entry.leaseId());
        writeString(out, entry.key());
        out.writeInt(entry.value().length);
        out.write(entry.value());
    }

    static Versioned readEntry(ByteBuffer in) {
        long modRevision = in.getLong();
        long createRevision = in.getLong();
        long leaseId = in.getLong();
        String key = readString(in);
        byte[] value = readBytes(in);
        if (modRevision <= 0 || createRevision <= 0 || createRevision > modRevision) {
            throw new IllegalArgumentException("key " + key + ": invalid revisions create=" + createRevision
                    + " mod=" + modRevision);
        }
        return new Versioned(key, value, createRevision, modRevision, leaseId);
    }

    private static void writeString(DataOutputStream out, String s) throws IOException {
        byte[] utf8 = s.getBytes(StandardCharsets.UTF_8);
        out.writeInt(utf8.length);
        out.write(utf8);
    }

    private static String readString(ByteBuffer in) {
        return new String(readBytes(in), StandardCharsets.UTF_8);
    }

    private static byte[] readBytes(ByteBuffer in) {
        int length = in.getInt();
        if (length < 0 || length > in.remaining()) {
            throw new IllegalArgumentException("field length " + length + " exceeds the "
                    + in.remaining() + " bytes left");
        }
        byte[] bytes = new byte[length];
        in.get(bytes);
        return bytes;
    }
}
