package dev.stowage.engine.storage;

import static dev.stowage.engine.storage.StorageTestSupport.BS;
import static dev.stowage.engine.storage.StorageTestSupport.pattern;
import static dev.stowage.engine.storage.StorageTestSupport.read;
import static dev.stowage.engine.storage.StorageTestSupport.write;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Crash consistency of data and checksums (invariant S3 in docs/single-node.md): a power loss may
 * write a block's new data back before its checksum entry, and that must read as the new data, not
 * as corruption; bit rot outside recently written regions must still be caught.
 */
class UnsettledRegionsTest extends PoolTestBase {
    /** A pool that settles only when the test says so. */
    @Override
    FileStoragePool openPool() throws IOException {
        return FileStoragePool.open(dir, PoolManifest.CommitHook.NONE, Duration.ZERO);
    }

    private static Layer head(ReplicaStore store) {
        return ((LayeredReplicaStore) store).head();
    }

    /** The regions whose bits are set in the file itself (what a power loss would leave). */
    private static List<Long> bitsOnDisk(Path file) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        java.util.ArrayList<Long> regions = new java.util.ArrayList<>();
        for (int i = 0; i + 8 <= bytes.length; i += 8) {
            long word = b.getLong(i);
            for (int bit = 0; bit < 64; bit++) {
                if ((word & (1L << bit)) != 0) {
                    regions.add((long) i * 8 + bit);
                }
            }
        }
        return regions;
    }

    /** Block {@code b}'s checksum entry as the layer's file holds it (what a power loss would leave). */
    private static long entryInFile(Layer layer, long b) throws IOException {
        ByteBuffer e = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel f = FileChannel.open(layer.path(), StandardOpenOption.READ)) {
            f.read(e, b * 8);
        }
        return e.getLong(0);
    }

    /**
     * The files of the pool as they are now, copied to {@code to}: a power loss after the kernel
     * wrote back everything it holds, with whatever is only in the process's memory lost.
     */
    private void copyAsACrashLeavesIt(Path to) throws IOException, InterruptedException {
        // cp keeps the layer files sparse (their data starts far out, see Layer.DATA_OFFSET)
        Process cp = new ProcessBuilder("cp", "-a", "--sparse=always", dir + "/.", to.toString())
                .redirectErrorStream(true).start();
        String out = new String(cp.getInputStream().readAllBytes());
        assertEquals(0, cp.waitFor(), "cp: " + out);
    }

    @Test
    void aFlushLeavesOverwrittenEntriesInMemoryUntilTheSettlerWritesThemBack() throws IOException {
        ReplicaStore vol = reopen().create("vol", 8 * MIB);
        Layer head = head(vol);
        write(vol, 0, pattern(1, BS));
        vol.flush();
        assertEquals(head.table.get(0), entryInFile(head, 0), "a first write's entry is written at the flush");
        pool.settle();
        pool.settle();
        long settled = entryInFile(head, 0);

        write(vol, 0, pattern(2, BS));
        vol.flush();
        assertEquals(settled, entryInFile(head, 0), "the overwrite's entry stays in memory after the flush");
        assertEquals(List.of(0L), bitsOnDisk(head.unsettled.path()), "so its region stays marked on disk");
        assertEquals(0, pool.settle(), "written during this round");
        assertEquals(1, pool.settle());
        assertEquals(List.of(), bitsOnDisk(head.unsettled.path()));
        assertEquals(head.table.get(0), entryInFile(head, 0), "the mark was cleared only after the entry was written");
        assertArrayEquals(pattern(2, BS), read(vol, 0, BS), "the entry reads back after its page left memory");
    }

    @Test
    void aVolumeWrittenAllOverWithoutPauseStillHasItsTableWrittenBack() throws IOException {
        long pages = LayeredReplicaStore.TABLE_PAGES_KEPT;
        ReplicaStore vol = reopen().create("vol", pages * 2 * MIB); // a table page covers 2 MiB of data
        Layer head = head(vol);
        for (long p = 0; p < pages; p++) {
            write(vol, p * 2 * MIB, pattern(p, BS));
        }
        vol.flush();
        for (long p = 0; p < pages; p++) {
            write(vol, p * 2 * MIB, pattern(p + pages, BS)); // overwrites: their entries stay in memory
        }
        long last = (pages - 1) * 2 * MIB / BS;
        assertFalse(head.table.get(0) == entryInFile(head, 0), "not written back yet");

        assertEquals(0, pool.settle(), "every region was written this round: none settles");
        assertEquals(head.table.get(0), entryInFile(head, 0), "but the round wrote the table back");
        assertEquals(head.table.get(last), entryInFile(head, last));
        assertEquals(0, head.table.changedPages());
        assertEquals(pages, bitsOnDisk(head.unsettled.path()).size(), "and the marks stay");
        assertArrayEquals(pattern(pages, BS), read(vol, 0, BS));
    }

    @Test
    void flushedWritesSurviveACrashThatLosesTheTablePagesStillInMemory(@TempDir Path crashed) throws Exception {
        ReplicaStore vol = reopen().create("vol", 8 * MIB);
        write(vol, 0, pattern(1, 4 * BS));
        pool.snapshot("vol", "s");
        write(vol, 0, pattern(2, BS)); // the head's first write of block 0
        vol.flush();
        pool.settle();
        pool.settle();
        write(vol, 0, pattern(3, BS)); // an overwrite in the head: its entry is not written at the flush
        write(vol, BS, pattern(4, BS)); // the head's first write of block 1, over the snapshot's
        write(vol, 5 * MIB, pattern(5, BS)); // a block nothing held before
        vol.flush();
        copyAsACrashLeavesIt(crashed);

        try (FileStoragePool after = FileStoragePool.open(crashed, PoolManifest.CommitHook.NONE, Duration.ZERO)) {
            ReplicaStore again = after.open("vol").orElseThrow();
            assertArrayEquals(pattern(3, BS), read(again, 0, BS), "rebuilt from the data: its region was marked");
            assertArrayEquals(pattern(4, BS), read(again, BS, BS), "not the snapshot's block below");
            assertArrayEquals(pattern(5, BS), read(again, 5 * MIB, BS), "not zeros");
            assertArrayEquals(java.util.Arrays.copyOfRange(pattern(1, 4 * BS), 2 * BS, 4 * BS),
                    read(again, 2 * BS, 2 * BS), "blocks the head never wrote still read from the snapshot");
        }
    }

    /**
     * A node process that dies leaves the kernel's page cache behind, and with the fd keeper the
     * next process answers the flush that follows writes the dead one acknowledged. So every write
     * acknowledged and not flushed must read back in a store opened from what the files hold:
     * overwrites are rebuilt from the data, and a first write's presence must be in the file.
     */
    @Test
    void writesAProcessAcknowledgedBeforeItDiedReadBackInTheNext(@TempDir Path after) throws Exception {
        ReplicaStore vol = reopen().create("vol", 8 * MIB);
        write(vol, 0, pattern(1, 4 * BS));
        vol.flush();
        pool.snapshot("vol", "s");
        write(vol, 0, pattern(2, BS)); // the head's first write of block 0, over the snapshot's
        vol.flush();
        write(vol, 0, pattern(3, BS)); // an overwrite in the head
        write(vol, BS, pattern(4, BS)); // the head's first write of block 1, over the snapshot's
        write(vol, 5 * MIB, pattern(5, 2 * BS)); // blocks nothing held before
        write(vol, 6 * MIB + 100, pattern(6, 300)); // part of a block nothing held before
        copyAsACrashLeavesIt(after); // no flush: the process dies, the page cache stays

        try (FileStoragePool next = FileStoragePool.open(after, PoolManifest.CommitHook.NONE, Duration.ZERO)) {
            ReplicaStore again = next.open("vol").orElseThrow();
            assertArrayEquals(pattern(3, BS), read(again, 0, BS), "the overwrite");
            assertArrayEquals(pattern(4, BS), read(again, BS, BS), "a first write, not the snapshot's block");
            assertArrayEquals(pattern(5, 2 * BS), read(again, 5 * MIB, 2 * BS), "first writes, not zeros");
            assertArrayEquals(pattern(6, 300), read(again, 6 * MIB + 100, 300), "a partial first write, not zeros");
        }
    }

    @Test
    void tablePagesWrittenBackCanBeDroppedFromMemoryAndChangedAgain() throws IOException {
        ReplicaStore vol = reopen().create("vol", 8 * MIB);
        Layer head = head(vol);
        write(vol, 0, pattern(1, BS));
        write(vol, 4 * MIB, pattern(2, BS)); // another table page
        long e0 = head.table.get(0);
        long e1 = head.table.get(4 * MIB / BS);
        head.force();
        assertEquals(2, head.table.release());
        assertEquals(0, head.table.release(), "nothing was written back since");
        assertEquals(e0, head.table.get(0));
        assertEquals(e1, head.table.get(4 * MIB / BS));

        write(vol, 0, pattern(3, BS));
        assertEquals(0, head.table.release(), "a changed page stays until written back");
        head.force();
        assertEquals(head.table.get(0), entryInFile(head, 0));
        assertEquals(1, head.table.release());
        assertArrayEquals(pattern(3, BS), read(vol, 0, BS));
        assertArrayEquals(pattern(2, BS), read(vol, 4 * MIB, BS));
    }

    @Test
    void theRegionsARecoveryTookAsWrittenAreKeptUntilTheirUserForgetsThem() throws IOException {
        ReplicaStore vol = reopen().create("vol", 8 * MIB);
        write(vol, 3 * MIB + BS, pattern(1, BS));
        write(vol, 6 * MIB, pattern(2, BS));
        vol.flush();
        Path unsettledFile = head(vol).unsettled.path();
        byte[] marksAtTheCrash = Files.readAllBytes(unsettledFile);
        assertArrayEquals(new long[0], vol.regionsRecoveredAfterCrash(), "no crash yet");
        pool.close();
        pool = null;
        Files.write(unsettledFile, marksAtTheCrash); // a clean close cleared them; a crash would not have

        ReplicaStore again = reopen().open("vol").orElseThrow();
        assertArrayEquals(new long[] {3, 6}, again.regionsRecoveredAfterCrash());
        assertEquals(List.of(), bitsOnDisk(unsettledFile), "recovery settled the regions");
        pool.close();
        pool = null;
        ReplicaStore third = reopen().open("vol").orElseThrow();
        assertArrayEquals(new long[] {3, 6}, third.regionsRecoveredAfterCrash(), "kept across a restart");
        third.forgetRegionsRecoveredAfterCrash();
        assertArrayEquals(new long[0], third.regionsRecoveredAfterCrash());
        pool.close();
        pool = null;
        assertArrayEquals(new long[0], reopen().open("vol").orElseThrow().regionsRecoveredAfterCrash());
    }

    @Test
    void aRecoveryInAnotherBootOfTheKernelNamesItsRegionsAsHavingLostThePageCache() throws IOException {
        ReplicaStore vol = reopen().create("vol", 8 * MIB);
        write(vol, 2 * MIB, pattern(1, BS));
        vol.flush();
        Path unsettledFile = head(vol).unsettled.path();
        byte[] marksAtTheCrash = Files.readAllBytes(unsettledFile);
        Path poolDir = pool.dataDir();
        pool.close();
        pool = null;
        Files.write(unsettledFile, marksAtTheCrash); // a kill -9: the marks stay, the page cache too
        ReplicaStore again = reopen().open("vol").orElseThrow();
        assertArrayEquals(new long[] {2}, again.regionsRecoveredAfterCrash());
        assertArrayEquals(new long[0], again.regionsRecoveredAfterPowerLoss(), "same boot: the page cache was kept");

        write(again, 5 * MIB, pattern(2, BS));
        again.flush();
        marksAtTheCrash = Files.readAllBytes(unsettledFile);
        pool.close();
        pool = null;
        Files.write(unsettledFile, marksAtTheCrash);
        Files.writeString(poolDir.resolve(BootRecord.FILE_NAME), "a-boot-before-a-power-loss\n");
        ReplicaStore third = reopen().open("vol").orElseThrow();
        assertArrayEquals(new long[] {2, 5}, third.regionsRecoveredAfterCrash(), "both crashes' regions");
        assertArrayEquals(new long[] {5}, third.regionsRecoveredAfterPowerLoss(), "the second crash lost the page cache");
        assertEquals(Files.readString(Path.of("/proc/sys/kernel/random/boot_id")).trim(),
                Files.readString(poolDir.resolve(BootRecord.FILE_NAME)).trim(), "this boot is recorded now");
        third.forgetRegionsRecoveredAfterCrash();
        assertArrayEquals(new long[0], third.regionsRecoveredAfterPowerLoss());
    }

    @Test
    void aFlushCoversTheFilesOfItsOwnFileSystemOnly() throws IOException {
        ReplicaStore vol = reopen().create("vol", 8 * MIB);
        assertTrue(vol.flushCovers(pool.dataDir()), "the pool's own directory");
        assertFalse(vol.flushCovers(Path.of("/proc/self/status")), "another file system");
        assertFalse(vol.flushCovers(pool.dataDir().resolve("no-such-file")), "unknown counts as not covered");
    }

    @Test
    void dataThatReachedTheDiskBeforeItsChecksumReadsBackAfterACrash() throws IOException {
        ReplicaStore vol = reopen().create("vol", 8 * MIB);
        byte[] old = pattern(1, BS);
        byte[] rot = pattern(5, BS);
        write(vol, 3L * BS, old);
        write(vol, 5 * MIB, rot); // region 5: written, flushed and settled long before the crash
        vol.flush();
        pool.settle();
        pool.settle();
        Layer head = head(vol);
        assertEquals(List.of(), bitsOnDisk(head.unsettled.path()), "everything settled");
        long oldEntry = head.table.get(3);

        byte[] fresh = pattern(2, BS);
        write(vol, 3L * BS, fresh);
        assertEquals(List.of(0L), bitsOnDisk(head.unsettled.path()), "the write marked its region before returning");

        // The power loss: the data page reached the disk, the checksum table page did not.
        head.table.put(3, oldEntry);
        head.force();
        byte[] marksAtTheCrash = Files.readAllBytes(head.unsettled.path());
        Path unsettledFile = head.unsettled.path();
        Path layerFile = head.path();
        pool.close();
        pool = null;
        Files.write(unsettledFile, marksAtTheCrash); // a clean close cleared them; a crash would not have
        // Bit rot in the settled region meanwhile.
        try (FileChannel f = FileChannel.open(layerFile, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            f.write(ByteBuffer.wrap(new byte[] {(byte) ~rot[100]}), Layer.DATA_OFFSET + 5 * MIB + 100);
        }

        ReplicaStore again = reopen().open("vol").orElseThrow();
        assertArrayEquals(fresh, read(again, 3L * BS, BS), "the data on disk is the block's content");
        assertEquals(List.of(), bitsOnDisk(head(again).unsettled.path()), "recovery settled the region");
        ChecksumMismatchException e = assertThrows(ChecksumMismatchException.class, () -> read(again, 5 * MIB, BS),
                "a mismatch outside the marked regions is still corruption");
        assertEquals(5 * MIB / BS, e.blockIndex());

        pool.close();
        pool = null;
        ReplicaStore third = reopen().open("vol").orElseThrow();
        assertArrayEquals(fresh, read(third, 3L * BS, BS), "the rewritten checksum entry was made durable");
    }

    @Test
    void aFirstWriteWhoseDataNeverLandedReadsWhatLiesBelow() throws IOException {
        ReplicaStore vol = reopen().create("vol", 4 * MIB);
        byte[] below = pattern(1, BS);
        write(vol, 0, below);
        pool.snapshot("vol", "s");
        write(vol, 0, pattern(2, BS)); // the head's first write of block 0
        Layer head = head(vol);
        byte[] marks = Files.readAllBytes(head.unsettled.path());
        // The crash: the entry reached the disk, the data (the head's first for this block) did not.
        try (FileChannel f = FileChannel.open(head.path(), StandardOpenOption.WRITE)) {
            f.truncate(Layer.DATA_OFFSET);
        }
        Path unsettledFile = head.unsettled.path();
        pool.close();
        pool = null;
        Files.write(unsettledFile, marks);
        ReplicaStore again = reopen().open("vol").orElseThrow();
        assertArrayEquals(below, read(again, 0, BS));
        assertEquals(ChecksumTable.ABSENT, head(again).table.get(0), "the head no longer claims the block");
    }

    @Test
    void aRegionIsUnmarkedOnlyAfterAFlushAndAWholeRoundWithoutWrites() throws IOException {
        ReplicaStore vol = reopen().create("vol", 8 * MIB);
        Layer head = head(vol);
        write(vol, 0, pattern(1, 2 * BS));
        write(vol, 2 * MIB - BS, pattern(2, 2 * BS)); // spans regions 1 and 2
        assertEquals(List.of(0L, 1L, 2L), head.unsettled.marked());
        long syncs = head.unsettled.syncs();

        assertEquals(0, pool.settle(), "written during this round: not idle yet");
        write(vol, 2 * MIB, pattern(3, BS)); // region 2 again
        assertEquals(syncs, head.unsettled.syncs(), "a marked region costs no sync");
        assertEquals(2, pool.settle(), "regions 0 and 1 were idle for a round; region 2 was written");
        assertEquals(List.of(2L), head.unsettled.marked());
        assertEquals(List.of(2L), bitsOnDisk(head.unsettled.path()));
        assertEquals(1, pool.settle());
        assertEquals(List.of(), head.unsettled.marked());

        write(vol, 0, pattern(4, BS));
        assertEquals(syncs + 1, head.unsettled.syncs(), "a settled region is marked again, durably");
        assertEquals(List.of(0L), bitsOnDisk(head.unsettled.path()));
    }

    @Test
    void snapshotsAndCleanClosesLeaveNothingToRecover() throws IOException {
        ReplicaStore vol = reopen().create("vol", 4 * MIB);
        write(vol, 0, pattern(1, BS));
        Layer frozen = head(vol);
        pool.snapshot("vol", "s");
        assertEquals(List.of(), frozen.unsettled.marked(), "a frozen layer is flushed and never written again");
        assertEquals(List.of(), bitsOnDisk(frozen.unsettled.path()));

        write(vol, MIB, pattern(2, BS));
        Path unsettledFile = head(vol).unsettled.path();
        assertFalse(bitsOnDisk(unsettledFile).isEmpty());
        pool.close();
        pool = null;
        assertEquals(List.of(), bitsOnDisk(unsettledFile), "a clean close flushes and clears");
        ReplicaStore again = reopen().open("vol").orElseThrow();
        assertArrayEquals(pattern(2, BS), read(again, MIB, BS));
        assertTrue(head(again).unsettled.marked().isEmpty());
    }
}
