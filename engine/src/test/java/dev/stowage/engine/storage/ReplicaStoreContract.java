package dev.stowage.engine.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Behaviour every {@link ReplicaStore} must have. A subclass provides fresh stores and a way to
 * reopen one as a restarted process would.
 */
public abstract class ReplicaStoreContract {
    protected static final int BS = ReplicaStore.BLOCK_SIZE;

    /** A new, empty store of {@code sizeBytes}. */
    protected abstract ReplicaStore create(String volumeId, long sizeBytes) throws IOException;

    /** The same volume after the backing storage was closed and opened again (data flushed before). */
    protected abstract ReplicaStore reopen(String volumeId) throws IOException;

    protected static byte[] pattern(long seed, int length) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    protected static byte[] read(ReplicaStore store, long offset, int length) throws IOException {
        ByteBuffer dst = ByteBuffer.allocate(length);
        store.read(offset, dst);
        assertEquals(length, dst.position(), "read advances dst to its limit");
        return dst.array();
    }

    protected static void write(ReplicaStore store, long offset, byte[] data) throws IOException {
        ByteBuffer src = ByteBuffer.wrap(data);
        store.write(offset, src);
        assertEquals(data.length, src.position(), "write advances src to its limit");
    }

    @Test
    void neverWrittenRangesReadAsZeros() throws IOException {
        ReplicaStore s = create("zeros", 64L << 20);
        assertArrayEquals(new byte[3 * BS + 100], read(s, 12345, 3 * BS + 100));
        assertArrayEquals(new byte[BS], read(s, (64L << 20) - BS, BS));
        assertEquals(64L << 20, s.sizeBytes());
        assertEquals("zeros", s.volumeId());
    }

    @Test
    void alignedRoundTripWithHeapAndDirectBuffers() throws IOException {
        ReplicaStore s = create("aligned", 16L << 20);
        byte[] a = pattern(1, 300 * BS); // more than one 1 MiB run
        write(s, 8 * BS, a);
        assertArrayEquals(a, read(s, 8 * BS, a.length));

        byte[] b = pattern(2, 5 * BS);
        ByteBuffer direct = ByteBuffer.allocateDirect(b.length);
        direct.put(b).flip();
        s.write(1000L * BS, direct);
        ByteBuffer back = ByteBuffer.allocateDirect(b.length);
        s.read(1000L * BS, back);
        back.flip();
        byte[] got = new byte[b.length];
        back.get(got);
        assertArrayEquals(b, got);
    }

    @Test
    void unalignedWritesMatchAByteModel() throws IOException {
        int size = (1 << 20) + 1000; // not a multiple of the block size
        ReplicaStore s = create("unaligned", size);
        byte[] model = new byte[size];
        Random r = new Random(42);
        for (int i = 0; i < 300; i++) {
            int len = 1 + r.nextInt(3 * BS);
            int off = r.nextInt(size - len + 1);
            byte[] data = pattern(r.nextLong(), len);
            write(s, off, data);
            System.arraycopy(data, 0, model, off, len);
            int rl = 1 + r.nextInt(2 * BS);
            int ro = r.nextInt(size - rl + 1);
            byte[] expected = new byte[rl];
            System.arraycopy(model, ro, expected, 0, rl);
            assertArrayEquals(expected, read(s, ro, rl), "read " + ro + "+" + rl + " after write " + i);
        }
        assertArrayEquals(model, read(s, 0, size));
    }

    @Test
    void concurrentWritersToDistinctBlocks() throws Exception {
        ReplicaStore s = create("concurrent", 32L << 20);
        int threads = 4;
        int blocksEach = 256;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int id = t;
                done.add(pool.submit(() -> {
                    for (int i = 0; i < blocksEach; i++) {
                        long block = (long) i * threads + id; // interleaved: neighbours belong to others
                        ByteBuffer buf = ByteBuffer.allocateDirect(BS);
                        buf.put(pattern(block, BS)).flip();
                        s.write(block * BS, buf);
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(30, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        for (long block = 0; block < (long) threads * blocksEach; block++) {
            assertArrayEquals(pattern(block, BS), read(s, block * BS, BS), "block " + block);
        }
    }

    @Test
    void concurrentPartialWritersOfOneBlockLoseNoUpdate() throws Exception {
        ReplicaStore s = create("rmw", 1L << 20);
        int threads = 4;
        int sector = BS / threads;
        int rounds = 300;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int id = t;
                done.add(pool.submit(() -> {
                    for (int round = 1; round <= rounds; round++) {
                        byte[] data = new byte[sector];
                        java.util.Arrays.fill(data, (byte) round);
                        for (int block = 0; block < 4; block++) {
                            s.write((long) block * BS + (long) id * sector, ByteBuffer.wrap(data));
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(30, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        byte[] all = read(s, 0, 4 * BS);
        for (int i = 0; i < all.length; i++) {
            assertEquals((byte) rounds, all[i], "byte " + i + ": a read-modify-write lost an update");
        }
    }

    @Test
    void readersDuringOverwritesSeeWholeBlocksAndNoFalseCorruption() throws Exception {
        ReplicaStore s = create("overwrite", 1L << 20);
        int blocks = 8;
        int rounds = 400;
        ExecutorService pool = Executors.newFixedThreadPool(3);
        try {
            Future<?> writer = pool.submit(() -> {
                ByteBuffer buf = ByteBuffer.allocateDirect(blocks * BS);
                for (int round = 1; round <= rounds; round++) {
                    buf.clear();
                    for (int i = 0; i < blocks * BS; i++) {
                        buf.put((byte) (round + i / BS)); // each block uniform, different per round
                    }
                    buf.flip();
                    s.write(0, buf);
                    // and a partial overwrite, keeping the block uniform
                    byte[] part = new byte[BS / 2];
                    java.util.Arrays.fill(part, (byte) (round + 3));
                    s.write(3L * BS, ByteBuffer.wrap(part));
                    s.write(3L * BS + BS / 2, ByteBuffer.wrap(part));
                }
                return null;
            });
            List<Future<?>> readers = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                readers.add(pool.submit(() -> {
                    ByteBuffer dst = ByteBuffer.allocateDirect(blocks * BS);
                    while (!writer.isDone()) {
                        dst.clear();
                        s.read(0, dst); // must not throw ChecksumMismatchException
                        for (int b = 0; b < blocks; b++) {
                            if (b == 3) {
                                continue; // mid-RMW content may be half old, half new: both halves uniform
                            }
                            byte first = dst.get(b * BS);
                            for (int i = 1; i < BS; i++) {
                                if (dst.get(b * BS + i) != first) {
                                    throw new AssertionError("block " + b + " torn at byte " + i);
                                }
                            }
                        }
                    }
                    return null;
                }));
            }
            writer.get(60, TimeUnit.SECONDS);
            for (Future<?> f : readers) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void outOfRangeAndNegativeOffsetsAreRejected() throws IOException {
        ReplicaStore s = create("range", 789);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> s.write(123, ByteBuffer.allocate(667)));
        assertEquals("offset 123 + length 667 exceeds size 789", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> s.read(790, ByteBuffer.allocate(0)));
        assertThrows(IllegalArgumentException.class, () -> s.read(-1, ByteBuffer.allocate(1)));
        assertThrows(IllegalArgumentException.class, () -> s.read(Long.MAX_VALUE, ByteBuffer.allocate(10)));
        s.write(789, ByteBuffer.allocate(0)); // empty at the end is fine
        write(s, 0, pattern(3, 789));
        assertArrayEquals(pattern(3, 789), read(s, 0, 789));
    }

    @Test
    void resizeGrowsAndRefusesToShrink() throws IOException {
        ReplicaStore s = create("resize", 1L << 20);
        byte[] a = pattern(4, 2 * BS);
        write(s, (1L << 20) - BS, java.util.Arrays.copyOf(a, BS));
        s.resize(1L << 30);
        assertEquals(1L << 30, s.sizeBytes());
        write(s, (1L << 30) - 2 * BS, a);
        assertArrayEquals(a, read(s, (1L << 30) - 2 * BS, a.length));
        assertArrayEquals(java.util.Arrays.copyOf(a, BS), read(s, (1L << 20) - BS, BS));
        assertArrayEquals(new byte[BS], read(s, 1L << 29, BS));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> s.resize(1L << 20));
        assertTrue(e.getMessage().contains("newSizeBytes"), e.getMessage());
        s.flush();
        ReplicaStore again = reopen("resize");
        assertEquals(1L << 30, again.sizeBytes());
        assertArrayEquals(a, read(again, (1L << 30) - 2 * BS, a.length));
    }

    /**
     * A bulk write (a resync's copy, which a store may write past its page cache) replaces data that
     * an ordinary write left cached and not yet written back, keeps the neighbours of its range, falls
     * back to an ordinary write when unaligned, and is durable after a flush.
     */
    @Test
    void bulkWritesReplaceCachedDataAndSurviveReopen() throws IOException {
        ReplicaStore s = create("bulk", 8L << 20);
        byte[] cached = pattern(6, 3 << 20);
        write(s, 0, cached); // dirty in the page cache: no flush
        byte[] bulk = pattern(7, 1 << 20);
        ByteBuffer aligned = ByteBuffer.allocateDirect(bulk.length + BS).alignedSlice(BS);
        aligned.put(bulk).flip();
        s.writeBulk(1 << 20, aligned);
        assertEquals(bulk.length, aligned.position(), "writeBulk advances src to its limit");
        assertArrayEquals(bulk, read(s, 1 << 20, bulk.length));
        assertArrayEquals(java.util.Arrays.copyOfRange(cached, 0, 1 << 20), read(s, 0, 1 << 20));
        assertArrayEquals(java.util.Arrays.copyOfRange(cached, 2 << 20, 3 << 20), read(s, 2 << 20, 1 << 20));

        byte[] odd = pattern(8, 2 * BS + 100);
        s.writeBulk(5L * BS + 7, ByteBuffer.wrap(odd)); // unaligned, from a heap buffer
        assertArrayEquals(odd, read(s, 5L * BS + 7, odd.length));

        s.flush();
        ReplicaStore again = reopen("bulk");
        assertArrayEquals(bulk, read(again, 1 << 20, bulk.length));
        assertArrayEquals(odd, read(again, 5L * BS + 7, odd.length));
        assertArrayEquals(java.util.Arrays.copyOfRange(cached, 2 << 20, 3 << 20), read(again, 2 << 20, 1 << 20));
    }

    @Test
    void flushedWritesSurviveReopen() throws IOException {
        ReplicaStore s = create("durable", 8L << 20);
        byte[] a = pattern(5, 10 * BS + 77);
        write(s, 3 * BS + 5, a);
        s.flush();
        ReplicaStore again = reopen("durable");
        assertArrayEquals(a, read(again, 3 * BS + 5, a.length));
        assertArrayEquals(new byte[BS], read(again, 0, BS));
    }
}
