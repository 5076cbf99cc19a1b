package dev.stowage.engine.replication.net;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class FrameCodecTest {
    private final EmbeddedChannel out = new EmbeddedChannel(new FrameCodec());
    private final EmbeddedChannel in = new EmbeddedChannel(new FrameCodec());

    @AfterEach
    void closeChannels() {
        out.finishAndReleaseAll();
        in.finishAndReleaseAll();
    }

    private ByteBuf encode(Frame f) {
        assertTrue(out.writeOutbound(f));
        ByteBuf all = Unpooled.buffer();
        ByteBuf part;
        while ((part = out.readOutbound()) != null) {
            all.writeBytes(part);
            part.release();
        }
        return all;
    }

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void requestRoundTripKeepsEveryFieldAndThePayload() {
        byte[] data = random(8192, 1);
        Frame sent = Frame.request(FrameType.WRITE, 77, 3, 9, (9L << 40) | 5, 1 << 20, 42, Unpooled.wrappedBuffer(data));
        int crc = sent.crc();
        ByteBuf wire = encode(sent);
        assertEquals(Frame.HEADER_BYTES + data.length, wire.readableBytes());
        assertEquals(Frame.MAGIC, wire.getInt(0));
        assertTrue(in.writeInbound(wire));
        Frame got = in.readInbound();
        try {
            assertEquals(FrameType.WRITE, got.type());
            assertFalse(got.isResponse());
            assertEquals(0, got.statusByte());
            assertEquals(77, got.requestId());
            assertEquals(3, got.handle());
            assertEquals(9, got.epoch());
            assertEquals((9L << 40) | 5, got.generation());
            assertEquals(1 << 20, got.offset());
            assertEquals(42, got.aux());
            assertEquals(crc, got.crc());
            assertTrue(got.checksumMatches());
            assertArrayEquals(data, ByteBufUtil.getBytes(got.payload()));
            assertNotNull(got.payload().unwrap(), "the payload is a slice of the receive buffer, not a copy");
        } finally {
            got.release();
        }
    }

    @Test
    void responseRoundTripFedOneByteAtATime() {
        Frame req = Frame.request(FrameType.READ, 5, 1, 2, 0, 4096, 4096);
        byte[] data = random(4096, 2);
        Frame resp = Frame.response(req, FrameStatus.OK, 0, 4096, 4096, Unpooled.wrappedBuffer(data));
        req.release();
        ByteBuf wire = encode(resp);
        while (wire.isReadable()) {
            in.writeInbound(wire.readRetainedSlice(1));
        }
        wire.release();
        Frame got = in.readInbound();
        try {
            assertTrue(got.isResponse());
            assertEquals(FrameType.READ, got.type());
            assertEquals(FrameStatus.OK, got.status());
            assertEquals(5, got.requestId());
            assertTrue(got.checksumMatches());
            assertArrayEquals(data, ByteBufUtil.getBytes(got.payload()));
        } finally {
            got.release();
        }
        assertNull(in.readInbound());
    }

    @Test
    void largePayloadsArrivingInPiecesAreReceivedIntoAlignedBuffersOfTheirOwn() {
        // Two large frames and a small one between them, cut at random places (mid-header included).
        byte[] a = random(1 << 20, 3);
        byte[] b = random(FrameCodec.OWN_BUFFER_MIN, 4);
        byte[] c = random(100, 5);
        ByteBuf wire = Unpooled.buffer();
        for (byte[] data : new byte[][] {a, c, b}) {
            ByteBuf one = encode(Frame.request(FrameType.WRITE, data.length, 1, 2, 3, 4096, Frame.WRITE_BULK,
                    Unpooled.wrappedBuffer(data)));
            wire.writeBytes(one);
            one.release();
        }
        Random cuts = new Random(6);
        while (wire.isReadable()) {
            in.writeInbound(wire.readRetainedSlice(Math.min(wire.readableBytes(), 1 + cuts.nextInt(200_000))));
        }
        wire.release();
        for (byte[] data : new byte[][] {a, c, b}) {
            Frame got = in.readInbound();
            assertNotNull(got, "frame of " + data.length + " bytes");
            try {
                assertEquals(data.length, got.requestId());
                assertEquals(Frame.WRITE_BULK, got.aux());
                assertTrue(got.checksumMatches());
                assertArrayEquals(data, ByteBufUtil.getBytes(got.payload()));
                if (data.length >= FrameCodec.OWN_BUFFER_MIN) {
                    assertEquals(1, got.payload().nioBufferCount());
                    java.nio.ByteBuffer nio = got.payload().nioBuffer();
                    assertTrue(nio.isDirect());
                    assertEquals(0, nio.alignmentOffset(nio.position(), 4096), "payload starts on a 4 KiB boundary");
                }
            } finally {
                got.release();
            }
        }
        assertNull(in.readInbound());
    }

    @Test
    void aConnectionClosedInsideALargePayloadReleasesWhatArrived() {
        PayloadBuffers pool = FrameCodec.LARGE_PAYLOADS;
        long before = pool.outstanding();
        ByteBuf wire = encode(Frame.request(FrameType.WRITE, 1, 1, 2, 3, 0, 0,
                Unpooled.wrappedBuffer(random(1 << 20, 7))));
        in.writeInbound(wire.readRetainedSlice(Frame.HEADER_BYTES + 1000));
        wire.release();
        assertEquals(before + 1, pool.outstanding(), "the payload's buffer is taken when its header arrives");
        assertNull(in.readInbound());
        in.close();
        assertEquals(before, pool.outstanding(), "the half-received payload's buffer went back");
    }

    @Test
    void emptyPayloadCarriesCrcZero() {
        ByteBuf wire = encode(Frame.request(FrameType.FLUSH, 1, 1, 1, 0, 0, 0));
        assertEquals(Frame.HEADER_BYTES, wire.readableBytes());
        assertEquals(0, wire.getInt(48));
        in.writeInbound(wire);
        Frame got = in.readInbound();
        assertEquals(0, got.length());
        assertTrue(got.checksumMatches());
        got.release();
    }

    private ByteBuf validHeaderWithPayload(int n) {
        return encode(Frame.request(FrameType.WRITE, 1, 1, 1, 1, 0, 0, Unpooled.wrappedBuffer(random(n, 3))));
    }

    @Test
    void badMagicIsRejected() {
        ByteBuf wire = validHeaderWithPayload(16);
        wire.setInt(0, 0x53545732);
        MalformedFrameException e = assertThrows(MalformedFrameException.class, () -> in.writeInbound(wire));
        assertTrue(e.getMessage().contains("magic"), e.getMessage());
    }

    @Test
    void oversizedLengthIsRejectedBeforeThePayloadArrives() {
        ByteBuf header = Unpooled.buffer();
        ByteBuf wire = validHeaderWithPayload(16);
        header.writeBytes(wire, 0, Frame.HEADER_BYTES);
        wire.release();
        header.setInt(20, Frame.MAX_PAYLOAD + 1);
        MalformedFrameException e = assertThrows(MalformedFrameException.class, () -> in.writeInbound(header));
        assertTrue(e.getMessage().contains("length"), e.getMessage());
    }

    @Test
    void negativeLengthReadsAsOversized() {
        ByteBuf wire = validHeaderWithPayload(16);
        wire.setInt(20, -1);
        assertThrows(MalformedFrameException.class, () -> in.writeInbound(wire));
    }

    @Test
    void nonZeroReservedIsRejected() {
        ByteBuf wire = validHeaderWithPayload(16);
        wire.setShort(6, 1);
        MalformedFrameException e = assertThrows(MalformedFrameException.class, () -> in.writeInbound(wire));
        assertTrue(e.getMessage().contains("reserved"), e.getMessage());
    }

    @Test
    void crcOnEmptyPayloadIsRejected() {
        ByteBuf wire = encode(Frame.request(FrameType.FLUSH, 1, 1, 1, 0, 0, 0));
        wire.setInt(48, 0x1234);
        assertThrows(MalformedFrameException.class, () -> in.writeInbound(wire));
    }

    @Test
    void bytesAfterAMalformedFrameAreDiscarded() {
        ByteBuf bad = validHeaderWithPayload(16);
        bad.setInt(0, 0);
        assertThrows(MalformedFrameException.class, () -> in.writeInbound(bad));
        ByteBuf good = validHeaderWithPayload(16);
        assertFalse(in.writeInbound(good));
        assertNull(in.readInbound());
    }

    @Test
    void damagedPayloadIsDecodedButFailsItsChecksum() {
        ByteBuf wire = validHeaderWithPayload(4096);
        wire.setByte(Frame.HEADER_BYTES + 100, wire.getByte(Frame.HEADER_BYTES + 100) ^ 1);
        in.writeInbound(wire);
        Frame got = in.readInbound();
        try {
            assertFalse(got.checksumMatches());
        } finally {
            got.release();
        }
    }

    @Test
    void unknownTypeAndStatusDecodeAsNull() {
        ByteBuf wire = encode(Frame.request(FrameType.FLUSH, 1, 1, 1, 0, 0, 0));
        wire.setByte(4, 0x7f);
        wire.setByte(5, 0x66);
        in.writeInbound(wire);
        Frame got = in.readInbound();
        assertNull(got.type());
        assertNull(got.status());
        got.release();
    }

    @Test
    void frameRefusesAnOversizedPayload() {
        ByteBuf big = Unpooled.buffer(Frame.MAX_PAYLOAD + 1).writeZero(Frame.MAX_PAYLOAD + 1);
        assertThrows(IllegalArgumentException.class,
                () -> Frame.request(FrameType.WRITE, 1, 1, 1, 1, 0, 0, big));
        big.release();
    }
}
