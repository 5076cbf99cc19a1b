package dev.stowage.engine.replication.net;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.CombinedChannelDuplexHandler;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.MessageToMessageEncoder;
import java.util.List;

/**
 * Decodes bytes into {@link Frame}s and encodes frames into bytes, as docs/replication.md lays
 * them out (big-endian, 56-byte header, then the payload).
 *
 * <p>Decoding validates each header as soon as its 56 bytes are in, before waiting for the
 * payload: a bad magic, a length above {@link Frame#MAX_PAYLOAD}, non-zero reserved bytes or a
 * non-zero crc on an empty payload raise {@link MalformedFrameException} (the handlers after this
 * one close the connection), and every later byte is discarded. Small payloads are retained
 * slices of the receive buffer (no copy). A payload of {@link #OWN_BUFFER_MIN} bytes or more is
 * copied, as its bytes arrive, into a buffer of its own from {@link PayloadBuffers}, whose memory
 * starts on a 4 KiB boundary: once per byte, where gathering it in Netty's cumulation buffer
 * copied it again each time that buffer grew (into freshly zeroed memory), and a bulk write can go
 * to disk with O_DIRECT straight from it (measured in docs/benchmarks.md). The payload's crc32c
 * is not checked here, which would cost the event loop a pass over every byte; see
 * {@link Frame#checksumMatches()}.
 *
 * <p>Encoding writes a 56-byte header buffer and then the frame's payload buffer itself (no copy);
 * the written frame's reference passes to the channel.
 *
 * <p>Threading: one instance per channel (not sharable), used on the channel's event loop.
 */
public final class FrameCodec extends CombinedChannelDuplexHandler<FrameCodec.Decoder, FrameCodec.Encoder> {

    public FrameCodec() {
        super(new Decoder(), new Encoder());
    }

    /** Payloads of at least this many bytes are received into a buffer of their own. */
    static final int OWN_BUFFER_MIN = 64 * 1024;

    /** Where large payloads are received: 4 KiB-aligned direct buffers, kept for reuse. */
    static final PayloadBuffers LARGE_PAYLOADS = new PayloadBuffers();

    /** The decoding half; see {@link FrameCodec}. */
    public static final class Decoder extends ByteToMessageDecoder {
        private boolean failed;
        /** The header of the large frame being received, and its payload so far; null when none. */
        private Header pendingHeader;
        private ByteBuf pendingPayload;

        @Override
        protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
            if (failed) {
                in.skipBytes(in.readableBytes());
                return;
            }
            if (pendingPayload != null) {
                receivePayload(in, out);
                return;
            }
            if (in.readableBytes() < Frame.HEADER_BYTES) {
                return;
            }
            int start = in.readerIndex();
            int magic = in.getInt(start);
            int reserved = in.getUnsignedShort(start + 6);
            long length = in.getUnsignedInt(start + 20);
            int crc = in.getInt(start + 48);
            String problem = null;
            if (magic != Frame.MAGIC) {
                problem = String.format("bad magic %08x (expected %08x)", magic, Frame.MAGIC);
            } else if (reserved != 0) {
                problem = "reserved bytes are " + reserved + ", must be 0";
            } else if (length > Frame.MAX_PAYLOAD) {
                problem = "length " + length + " exceeds " + Frame.MAX_PAYLOAD;
            } else if (length == 0 && crc != 0) {
                problem = String.format("crc32c %08x on an empty payload, must be 0", crc);
            }
            if (problem != null) {
                failed = true;
                in.skipBytes(in.readableBytes());
                throw new MalformedFrameException(problem);
            }
            boolean own = length >= OWN_BUFFER_MIN;
            if (!own && in.readableBytes() < Frame.HEADER_BYTES + length) {
                return;
            }
            Header header = new Header(in.getUnsignedByte(start + 4), in.getUnsignedByte(start + 5),
                    in.getLong(start + 8), in.getInt(start + 16), in.getLong(start + 24), in.getLong(start + 32),
                    in.getLong(start + 40), crc, in.getInt(start + 52));
            in.skipBytes(Frame.HEADER_BYTES);
            if (own) {
                pendingHeader = header;
                pendingPayload = LARGE_PAYLOADS.take((int) length);
                receivePayload(in, out);
            } else {
                out.add(header.frame(in.readRetainedSlice((int) length)));
            }
        }

        /** Copies what has arrived of the pending payload; emits the frame once it is whole. */
        private void receivePayload(ByteBuf in, List<Object> out) {
            int n = Math.min(in.readableBytes(), pendingPayload.writableBytes());
            pendingPayload.writeBytes(in, n);
            if (!pendingPayload.isWritable()) {
                Frame f = pendingHeader.frame(pendingPayload);
                pendingHeader = null;
                pendingPayload = null;
                out.add(f);
            }
        }

        /** A decoded header, waiting for its payload. */
        private record Header(int type, int status, long requestId, int handle, long epoch, long generation,
                              long offset, int crc, int aux) {
            Frame frame(ByteBuf payload) {
                return new Frame(type, status, requestId, handle, epoch, generation, offset, crc, aux, payload);
            }
        }

        /** The connection ended (its pipeline is torn down) inside a payload: that frame never arrives. */
        @Override
        protected void handlerRemoved0(ChannelHandlerContext ctx) {
            if (pendingPayload != null) {
                pendingPayload.release();
                pendingPayload = null;
                pendingHeader = null;
            }
        }
    }

    /** The encoding half; see {@link FrameCodec}. */
    public static final class Encoder extends MessageToMessageEncoder<Frame> {
        public Encoder() {
            super(Frame.class);
        }

        @Override
        protected void encode(ChannelHandlerContext ctx, Frame f, List<Object> out) {
            ByteBuf h = ctx.alloc().buffer(Frame.HEADER_BYTES);
            h.writeInt(Frame.MAGIC);
            h.writeByte(f.typeByte());
            h.writeByte(f.statusByte());
            h.writeShort(0);
            h.writeLong(f.requestId());
            h.writeInt(f.handle());
            h.writeInt(f.length());
            h.writeLong(f.epoch());
            h.writeLong(f.generation());
            h.writeLong(f.offset());
            h.writeInt(f.length() == 0 ? 0 : f.crc());
            h.writeInt(f.aux());
            out.add(h);
            if (f.length() > 0) {
                out.add(f.payload().retain());
            }
            // MessageToMessageEncoder releases the frame (its payload reference) after encode.
        }
    }
}
