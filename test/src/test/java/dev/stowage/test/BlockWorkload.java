package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.nio.file.ExtendedOpenOption;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.zip.CRC32C;

/**
 * A verifiable write workload on a raw block device: self-describing 4 KiB blocks (sequence number,
 * block index, pseudo-random bytes from both, crc32c), written in a fixed permutation over the first
 * {@code blocks} blocks, with a flush (fsync of the device) every {@code writesPerFlush} writes. After
 * each completed flush the blocks it covered enter the durable-sequence table: {@link #verify} then
 * checks that every such block holds its last flushed write or a later one, intact.
 *
 * <p>Threading: {@link #start()} runs the writer on one daemon thread until the device fails (the
 * expected end in a fault test); the other methods are called from the test thread. The durable
 * table is guarded by itself. Static helpers write and check whole patterns with O_DIRECT, so reads
 * reach the volume and not the page cache.
 */
public final class BlockWorkload {
    public static final int BLOCK = 4096;

    private final Path device;
    private final int blocks;
    private final int writesPerFlush;
    private final long[] durableSeq;
    private final AtomicLong flushes = new AtomicLong();
    private final AtomicReference<Throwable> end = new AtomicReference<>();
    private volatile boolean stopping;
    private Thread writer;

    /**
     * @param device         the published raw block device (written through the page cache, as an application would)
     * @param blocks         how many 4 KiB blocks from offset 0 the workload covers
     * @param writesPerFlush writes between two flushes
     */
    public BlockWorkload(Path device, int blocks, int writesPerFlush) {
        this.device = device;
        this.blocks = blocks;
        this.writesPerFlush = writesPerFlush;
        this.durableSeq = new long[blocks];
    }

    /** Starts the writer thread; it runs until a write or flush fails. */
    public BlockWorkload start() {
        writer = new Thread(this::writeUntilFailure, "block-workload-" + device.getFileName());
        writer.setDaemon(true);
        writer.start();
        return this;
    }

    /** Starts the writer and waits until {@code flushes} flushes completed (see {@link #awaitFlushes}). */
    public BlockWorkload startAndAwait(long flushes, Duration timeout) throws InterruptedException {
        start();
        awaitFlushes(flushes, timeout);
        return this;
    }

    /** Completed flushes so far. */
    public long flushes() { return flushes.get(); }

    /** What ended the writer, or null while it runs. */
    public Throwable failure() { return end.get(); }

    public boolean isRunning() { return writer != null && writer.isAlive(); }

    /** Waits until {@code target} flushes completed; fails the test if the writer ends or time runs out first. */
    public void awaitFlushes(long target, Duration timeout) throws InterruptedException {
        Instant deadline = Instant.now().plus(timeout);
        while (flushes.get() < target && writer.isAlive() && Instant.now().isBefore(deadline)) {
            Thread.sleep(20);
        }
        assertTrue(flushes.get() >= target, "only " + flushes.get() + " flushes, wanted " + target
                + " (writer: " + end.get() + ")");
    }

    /** Stops the writer after its current write and waits for it; true when it ended within {@code timeout}. */
    public boolean stop(Duration timeout) throws InterruptedException {
        stopping = true;
        return awaitEnd(timeout);
    }

    /** Waits up to {@code timeout} for the writer to end; true when it has. */
    public boolean awaitEnd(Duration timeout) throws InterruptedException {
        writer.join(Math.max(1, timeout.toMillis()));
        return !writer.isAlive();
    }

    /** A copy of the durable-sequence table: per block, the last write a completed flush covered (0: none). */
    public long[] durableSequences() {
        synchronized (durableSeq) {
            return durableSeq.clone();
        }
    }

    private void writeUntilFailure() {
        long[] pending = new long[blocks];
        ByteBuffer buf = ByteBuffer.allocateDirect(BLOCK);
        try (FileChannel ch = FileChannel.open(device, StandardOpenOption.WRITE)) {
            for (long seq = 1; !stopping; seq++) {
                int blockIndex = blockOf(seq);
                fill(buf, seq, blockIndex);
                while (buf.hasRemaining()) {
                    ch.write(buf, (long) blockIndex * BLOCK + buf.position());
                }
                pending[blockIndex] = seq;
                if (seq % writesPerFlush == 0) {
                    ch.force(false);
                    synchronized (durableSeq) {
                        for (int b = 0; b < blocks; b++) {
                            if (pending[b] != 0) {
                                durableSeq[b] = pending[b];
                                pending[b] = 0;
                            }
                        }
                    }
                    flushes.incrementAndGet();
                }
            }
        } catch (Throwable t) {
            end.set(t);
        }
    }

    /**
     * Checks every block with a flushed write against the durable table, reading {@code readDevice}
     * (the same volume, possibly attached elsewhere) with O_DIRECT. Returns how many blocks were checked.
     */
    public int verify(Path readDevice) throws IOException {
        long[] durable = durableSequences();
        ByteBuffer got = aligned();
        ByteBuffer want = ByteBuffer.allocateDirect(BLOCK);
        int checked = 0;
        try (FileChannel ch = openDirect(readDevice, StandardOpenOption.READ)) {
            for (int b = 0; b < durable.length; b++) {
                if (durable[b] == 0) {
                    continue;
                }
                readBlock(ch, got, b);
                long seq = got.getLong(0);
                assertEquals(b, got.getInt(8), "block " + b + " holds data of another block");
                assertTrue(seq >= durable[b], "block " + b + " lost a flushed write: holds seq " + seq
                        + ", flushed seq " + durable[b]);
                fill(want, seq, b);
                assertEquals(want, got, "block " + b + " (seq " + seq + ") is corrupt");
                checked++;
            }
        }
        return checked;
    }

    /**
     * Writes block {@code b} = pattern {@code seqBase + b} for every block below {@code count}, with
     * O_DIRECT, then flushes the device.
     */
    public static void writePattern(Path device, long seqBase, int count) throws IOException {
        ByteBuffer buf = aligned();
        try (FileChannel ch = openDirect(device, StandardOpenOption.WRITE)) {
            for (int b = 0; b < count; b++) {
                fill(buf, seqBase + b, b);
                while (buf.hasRemaining()) {
                    ch.write(buf, (long) b * BLOCK + buf.position());
                }
            }
            ch.force(false);
        }
    }

    /** Asserts that every block below {@code count} holds pattern {@code seqBase + b}, reading with O_DIRECT. */
    public static void verifyPattern(Path device, long seqBase, int count) throws IOException {
        ByteBuffer got = aligned();
        ByteBuffer want = ByteBuffer.allocateDirect(BLOCK);
        try (FileChannel ch = openDirect(device, StandardOpenOption.READ)) {
            for (int b = 0; b < count; b++) {
                readBlock(ch, got, b);
                fill(want, seqBase + b, b);
                if (!want.equals(got)) {
                    throw new AssertionError("block " + b + " does not hold the pattern: seq " + got.getLong(0)
                            + " block " + got.getInt(8) + ", wanted seq " + (seqBase + b));
                }
            }
        }
    }

    /**
     * The sequence number each of the first {@code count} blocks holds (0: never written), read with
     * O_DIRECT; a block that is neither zero nor an intact workload block fails the test.
     */
    public static long[] readSequences(Path device, int count) throws IOException {
        long[] seqs = new long[count];
        ByteBuffer got = aligned();
        ByteBuffer want = ByteBuffer.allocateDirect(BLOCK);
        try (FileChannel ch = openDirect(device, StandardOpenOption.READ)) {
            for (int b = 0; b < count; b++) {
                readBlock(ch, got, b);
                seqs[b] = got.getLong(0);
                if (seqs[b] == 0 && got.getInt(8) == 0) {
                    continue;
                }
                fill(want, seqs[b], b);
                assertEquals(want, got, "block " + b + " (seq " + seqs[b] + ") is not an intact workload block");
            }
        }
        return seqs;
    }

    /** The block the workload's write {@code seq} goes to. */
    public int blockOf(long seq) {
        return (int) ((seq * 7919) % blocks);
    }

    /** Writes one block with O_DIRECT (no flush): a "new write" that must reach the volume's coordinator. */
    public static void writeOneDirect(Path device, long seq, int blockIndex) throws IOException {
        ByteBuffer buf = aligned();
        fill(buf, seq, blockIndex);
        try (FileChannel ch = openDirect(device, StandardOpenOption.WRITE)) {
            while (buf.hasRemaining()) {
                ch.write(buf, (long) blockIndex * BLOCK + buf.position());
            }
        }
    }

    /** The self-describing content of block {@code blockIndex} at write {@code seq}: seq, index, noise, crc32c. */
    public static void fill(ByteBuffer buf, long seq, int blockIndex) {
        buf.clear();
        buf.putLong(seq).putInt(blockIndex);
        long x = seq * 0x9E3779B97F4A7C15L + blockIndex;
        while (buf.remaining() > 4) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            buf.put((byte) x);
        }
        CRC32C crc = new CRC32C();
        crc.update(buf.duplicate().flip());
        buf.putInt((int) crc.getValue());
        buf.flip();
    }

    private static void readBlock(FileChannel ch, ByteBuffer got, int b) throws IOException {
        got.clear();
        while (got.hasRemaining()) {
            if (ch.read(got, (long) b * BLOCK + got.position()) < 0) {
                throw new IOException("short read of block " + b);
            }
        }
        got.flip();
    }

    private static FileChannel openDirect(Path device, OpenOption mode) throws IOException {
        return FileChannel.open(device, mode, ExtendedOpenOption.DIRECT);
    }

    /** A 4 KiB direct buffer aligned to 4 KiB, as O_DIRECT needs. */
    private static ByteBuffer aligned() {
        return ByteBuffer.allocateDirect(2 * BLOCK).alignedSlice(BLOCK).limit(BLOCK).slice();
    }
}
