package dev.stowage.engine.replication.net;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.util.ReferenceCounted;
import java.nio.charset.StandardCharsets;

/**
 * One frame of the replication protocol (docs/replication.md): the 56-byte header's fields and
 * the payload.
 *
 * <p>Buffer ownership: a frame owns one reference to its {@link #payload()}. Whoever holds the
 * frame either passes it on (writing it to a channel hands the reference to the encoder) or calls
 * {@link #release()}. Decoded payloads are slices of the receive buffer, not copies.
 *
 * <p>The crc32c field is carried as given: frames built with the factory methods compute it over
 * the payload on the calling thread (not on an event loop); a decoded frame keeps the sender's
 * value, checked with {@link #checksumMatches()} by whoever needs it (WRITE requests, READ responses).
 *
 * <p>Threading: immutable header; the payload follows Netty's reference counting rules.
 */
public final class Frame implements ReferenceCounted {
    public static final int MAGIC = 0x53545731;
    public static final int HEADER_BYTES = 56;
    /** Largest payload: 4 MiB of data plus 4 KiB. */
    public static final int MAX_PAYLOAD = 4 * 1024 * 1024 + 4096;
    /**
     * WRITE request flag (aux bit 0): a resync or rebuild copy of whole regions, which the replica
     * may write past its page cache and whose generation it takes as the regions' exact one.
     */
    public static final int WRITE_BULK = 1;
    /** WRITE request flag (aux bit 1): record the regions as in doubt ({@link RegionGenerations#IN_DOUBT}). */
    public static final int WRITE_IN_DOUBT = 2;
    /** Largest watermark lag a WRITE's aux carries (bits 2 to 31). */
    static final long MAX_WATERMARK_LAG = (1L << 30) - 1;

    /**
     * The aux of a WRITE: {@code flags}, and in bits 2 to 31 how far {@code watermark} (every write
     * up to it completed on every healthy replica) lies below {@code generation}; 0 there says
     * nothing (no watermark, or one too far behind to carry).
     */
    public static int writeAux(int flags, long generation, long watermark) {
        long lag = generation - watermark;
        if (watermark == 0 || lag <= 0 || lag > MAX_WATERMARK_LAG) {
            lag = 0;
        }
        return flags | (int) (lag << 2);
    }

    /** The watermark a WRITE request carries (see {@link #writeAux}); 0 if none. */
    public long writeWatermark() {
        long lag = (aux & 0xffffffffL) >>> 2;
        return lag == 0 ? 0 : generation - lag;
    }

    private final int type;
    private final int status;
    private final long requestId;
    private final int handle;
    private final long epoch;
    private final long generation;
    private final long offset;
    private final int crc;
    private final int aux;
    private final ByteBuf payload;

    /** A frame with every field given; {@code payload} (never null) is owned by the frame. */
    public Frame(int type, int status, long requestId, int handle, long epoch, long generation,
                 long offset, int crc, int aux, ByteBuf payload) {
        if ((type & ~0xff) != 0 || (status & ~0xff) != 0) {
            throw new IllegalArgumentException("type and status are single bytes: " + type + ", " + status);
        }
        if (payload.readableBytes() > MAX_PAYLOAD) {
            throw new IllegalArgumentException("payload of " + payload.readableBytes()
                    + " bytes exceeds " + MAX_PAYLOAD);
        }
        this.type = type;
        this.status = status;
        this.requestId = requestId;
        this.handle = handle;
        this.epoch = epoch;
        this.generation = generation;
        this.offset = offset;
        this.crc = crc;
        this.aux = aux;
        this.payload = payload;
    }

    /** A request; the crc32c of {@code payload} is computed here. */
    public static Frame request(FrameType type, long requestId, int handle, long epoch, long generation,
                                long offset, int aux, ByteBuf payload) {
        return new Frame(type.code(), 0, requestId, handle, epoch, generation, offset,
                Crc32c.of(payload), aux, payload);
    }

    /** A request without payload. */
    public static Frame request(FrameType type, long requestId, int handle, long epoch, long generation,
                                long offset, int aux) {
        return request(type, requestId, handle, epoch, generation, offset, aux, Unpooled.EMPTY_BUFFER);
    }

    /** The response to {@code request} (echoing its id, handle and epoch); the crc of {@code payload} is computed here. */
    public static Frame response(Frame request, FrameStatus status, long generation, long offset, int aux,
                                 ByteBuf payload) {
        return new Frame(request.type | FrameType.RESPONSE_BIT, status.code(), request.requestId,
                request.handle, request.epoch, generation, offset, Crc32c.of(payload), aux, payload);
    }

    /** An error response whose payload is {@code message} in UTF-8. */
    public static Frame error(Frame request, FrameStatus status, long generation, long offset, String message) {
        byte[] m = message == null ? new byte[0] : message.getBytes(StandardCharsets.UTF_8);
        int n = Math.min(m.length, 4096);
        return response(request, status, generation, offset, 0, Unpooled.wrappedBuffer(m, 0, n));
    }

    /** The raw type byte (with {@link FrameType#RESPONSE_BIT} on responses). */
    public int typeByte() {
        return type;
    }

    /** The request type, or {@code null} if the code is unknown. */
    public FrameType type() {
        return FrameType.ofCode(type);
    }

    public boolean isResponse() {
        return (type & FrameType.RESPONSE_BIT) != 0;
    }

    public int statusByte() {
        return status;
    }

    /** The status, or {@code null} if the code is unknown. */
    public FrameStatus status() {
        return FrameStatus.ofCode(status);
    }

    public long requestId() {
        return requestId;
    }

    public int handle() {
        return handle;
    }

    public long epoch() {
        return epoch;
    }

    public long generation() {
        return generation;
    }

    public long offset() {
        return offset;
    }

    public int crc() {
        return crc;
    }

    public int aux() {
        return aux;
    }

    public int length() {
        return payload.readableBytes();
    }

    /** The payload; owned by the frame (see the class comment). */
    public ByteBuf payload() {
        return payload;
    }

    /** Whether the payload's crc32c equals the carried one. Costs a pass over the payload. */
    public boolean checksumMatches() {
        return Crc32c.of(payload) == crc;
    }

    /** The payload as UTF-8 text (error messages, volume ids). */
    public String payloadText() {
        return payload.toString(payload.readerIndex(), payload.readableBytes(), StandardCharsets.UTF_8);
    }

    @Override
    public int refCnt() {
        return payload.refCnt();
    }

    @Override
    public Frame retain() {
        payload.retain();
        return this;
    }

    @Override
    public Frame retain(int increment) {
        payload.retain(increment);
        return this;
    }

    @Override
    public Frame touch() {
        payload.touch();
        return this;
    }

    @Override
    public Frame touch(Object hint) {
        payload.touch(hint);
        return this;
    }

    @Override
    public boolean release() {
        return payload.release();
    }

    @Override
    public boolean release(int decrement) {
        return payload.release(decrement);
    }

    @Override
    public String toString() {
        FrameType t = type();
        return (t == null ? "type" + type : t.name()) + (isResponse() ? "/" + status() : "")
                + "{id=" + requestId + ", handle=" + handle + ", epoch=" + epoch + ", gen=" + generation
                + ", offset=" + offset + ", length=" + length() + ", aux=" + aux + "}";
    }
}
