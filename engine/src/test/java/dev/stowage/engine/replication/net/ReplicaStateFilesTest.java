package dev.stowage.engine.replication.net;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReplicaStateFilesTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    @Test
    void generationsKeepTheMaximumPerRegionAndSurviveReopen() throws IOException {
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            g.record(0, 4096, 10);
            g.record(MIB - 1, 2, 20);                 // straddles regions 0 and 1
            g.record(0, 4096, 5);                     // lower: no effect
            g.record(3 * MIB, 2 * MIB, 30);           // exactly regions 3 and 4
            g.record(200_000 * MIB, 1, 40);           // a later 1 MiB chunk of the table
            assertArrayEquals(new long[] {20, 20, 0, 30, 30, 0}, g.read(0, 6));
            g.persist(g.unpersisted());
        }
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            assertArrayEquals(new long[] {20, 20, 0, 30, 30, 0}, g.read(0, 6));
            assertArrayEquals(new long[] {0, 40, 0}, g.read(199_999, 3));
            assertArrayEquals(new long[] {0, 0}, g.read(900_000, 2), "beyond the file reads as 0");
        }
        assertTrue(Files.size(dir.resolve("v1.gen")) > 0);
    }

    @Test
    void generationsReachTheFileOnlyThroughPersistAndNeverAheadOfTheBatch() throws IOException {
        Path file = dir.resolve("v1.gen");
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            g.record(0, 4096, 7);
            g.persist(g.unpersisted());
            assertEquals(7, onDisk(file, 0));

            g.record(0, 4096, 8);
            g.record(MIB, 4096, 9);
            assertArrayEquals(new long[] {8, 9}, g.read(0, 2), "records are visible at once");
            assertEquals(7, onDisk(file, 0), "but not in the file: their data was not flushed yet");
            assertEquals(0, onDisk(file, 1));

            var batch = g.unpersisted();       // a flush takes the batch, then makes the data durable...
            g.record(0, 4096, 11);             // ...while a write raises region 0 again
            g.persist(batch);
            assertEquals(8, onDisk(file, 0), "only what the batch held");
            assertEquals(9, onDisk(file, 1));
            assertArrayEquals(new long[] {11, 9}, g.read(0, 2));
            assertEquals(java.util.Map.of(0L, 11L), g.unpersisted(), "the later record waits for the next flush");
            g.record(2 * MIB, 1, 12);          // never flushed
        }
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            assertArrayEquals(new long[] {8, 9, 0}, g.read(0, 3),
                    "after a close without a flush the table lags (a resync copies more, never less)");
        }
    }

    @Test
    void aBatchWrittenBackForTheDataFlushStaysUnpersistedUntilThatFlushReturned() throws IOException {
        Path file = dir.resolve("v1.gen");
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            g.record(0, 4096, 7);
            g.record(300_000 * MIB, 4096, 8); // another chunk of the table
            var batch = g.unpersisted();
            assertTrue(g.writeBack(batch), "sync_file_range is available here");
            assertEquals(7, onDisk(file, 0), "in the file, on its way to the device");
            assertEquals(8, onDisk(file, 300_000));
            assertEquals(batch, g.unpersisted(), "not durable before the data's device flush");
            g.record(0, 4096, 9); // a write meanwhile
            g.persisted(batch);
            assertEquals(java.util.Map.of(0L, 9L), g.unpersisted(), "the later record waits for the next flush");
        }
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            assertArrayEquals(new long[] {7, 8}, new long[] {g.read(0, 1)[0], g.read(300_000, 1)[0]});
        }
    }

    @Test
    void aCrashMarkForEveryEpochDoubtsTheRegionToTheCrashsOwnCoordinatorAndWinsOverLaterMarks() throws IOException {
        long e3 = 3L << 40;
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            g.record(0, 4096, e3 | 5);
            g.record(MIB, 4096, e3 | 6);
            g.persist(g.unpersisted());
            g.markInDoubt(new long[] {0, 1}, 3);                          // a process crash at epoch 3
            g.markInDoubt(new long[] {1}, RegionGenerations.EVERY_EPOCH); // a power loss at epoch 3
            g.markInDoubt(new long[] {0, 1}, 5);                          // a later crash, not yet copied
        }
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            long d = RegionGenerations.IN_DOUBT;
            assertArrayEquals(new long[] {e3 | 5, d}, g.read(0, 2, 3), "the marks keep their earliest epoch");
            assertArrayEquals(new long[] {1}, g.regionsAbove(ReplicaVolume.NO_WATERMARK, 3));
            assertArrayEquals(new long[] {d, d}, g.read(0, 2, 4));
        }
    }

    @Test
    void aRegionInDoubtStaysSoUnderWritesUntilACopyAssignsItAGeneration() throws IOException {
        Path file = dir.resolve("v1.gen");
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            g.record(0, 4096, 50);
            g.record(MIB, 4096, RegionGenerations.IN_DOUBT); // a write while a resync had not reached region 1
            g.persist(g.unpersisted());
            g.record(MIB, 4096, 70);
            assertEquals(RegionGenerations.IN_DOUBT, g.read(1, 1)[0], "a write does not vouch for the rest of the region");

            g.assign(MIB, MIB, 40); // the resync copied region 1 from a replica that holds it at 40
            assertArrayEquals(new long[] {50, 40}, g.read(0, 2));
            var older = java.util.Map.of(1L, RegionGenerations.IN_DOUBT); // a flush's batch taken before the copy
            g.persist(older);
            assertEquals(RegionGenerations.IN_DOUBT, onDisk(file, 1), "an older batch may raise the file...");
            g.persist(g.unpersisted());
            assertEquals(40, onDisk(file, 1), "...but the assigned value reaches it with the next persist");
        }
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            assertArrayEquals(new long[] {50, 40}, g.read(0, 2));
        }
    }

    @Test
    void crashMarksDoubtARegionOnlyToCoordinatorsOfLaterEpochsUntilItIsRewrittenWhole() throws IOException {
        long e3 = 3L << 40;
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            g.record(0, 4096, e3 | 5);
            g.record(MIB, 4096, e3 | 6);
            g.record(2 * MIB, 4096, e3 | 7);
            g.persist(g.unpersisted());
            g.markInDoubt(new long[] {0, 1, 2}, 3); // the node crashed at epoch 3
        }
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            assertArrayEquals(new long[] {e3 | 5, e3 | 6, e3 | 7}, g.read(0, 3, 3),
                    "epoch 3's coordinator saw the writes in flight fail here: the records stand");
            long d = RegionGenerations.IN_DOUBT;
            assertArrayEquals(new long[] {d, d, d}, g.read(0, 3, 4), "a later coordinator cannot know (durable marks)");
            assertArrayEquals(new long[] {0, 1, 2}, g.regionsAbove(ReplicaVolume.NO_WATERMARK, 4));
            assertArrayEquals(new long[0], g.regionsAbove(ReplicaVolume.NO_WATERMARK, 3));

            g.record(4096, 8192, (4L << 40) | 1);      // part of region 0: still in doubt
            g.record(MIB, MIB, (4L << 40) | 2);        // all of region 1: holds that write alone
            g.assign(2 * MIB, MIB, e3 | 7);            // region 2 copied from another replica
            assertArrayEquals(new long[] {d, (4L << 40) | 2, e3 | 7}, g.read(0, 3, 4));
            g.persist(g.unpersisted());
        }
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            assertArrayEquals(new long[] {0}, g.regionsAbove(ReplicaVolume.NO_WATERMARK, 4),
                    "the removed marks stay removed once persisted");
        }
    }

    @Test
    void regionsAboveAGenerationComeFromTheFileAndFromMemory() throws IOException {
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            long e1 = 1L << 40;
            g.record(0, MIB, e1 | 5);
            g.record(2 * MIB, MIB, e1 | 9);
            g.record(200_000 * MIB, 1, e1 | 12);        // a later chunk of the file
            g.persist(g.unpersisted());
            g.record(3 * MIB, 1, e1 | 10);              // in memory only
            g.record(4 * MIB, 1, e1 | 3);
            g.record(6 * MIB, 1, RegionGenerations.IN_DOUBT);
            assertArrayEquals(new long[] {2, 3, 6, 200_000}, g.regionsAbove(e1 | 5, 2));
            assertArrayEquals(new long[] {6}, g.regionsAbove(ReplicaVolume.NO_WATERMARK, 2),
                    "with no watermark heard, only the regions in doubt");
            g.assign(2 * MIB, MIB, e1 | 1);             // lower than the file holds
            assertArrayEquals(new long[] {3, 6, 200_000}, g.regionsAbove(e1 | 5, 2));
        }
    }

    /** Region {@code r}'s generation as the file holds it, read apart from the table's mapping. */
    private static long onDisk(Path file, long r) throws IOException {
        try (var ch = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.READ)) {
            var b = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            return ch.read(b, r * 8) < 8 ? 0 : b.getLong(0);
        }
    }

    @Test
    void generationsRejectNegativeArguments() throws IOException {
        try (RegionGenerations g = RegionGenerations.open(dir, "v1")) {
            assertThrows(IllegalArgumentException.class, () -> g.record(-1, 1, 1));
            assertThrows(IllegalArgumentException.class, () -> g.read(-1, 1));
        }
    }

    @Test
    void epochRisesOnlyAndSurvivesReopen() throws IOException {
        EpochFile e = EpochFile.open(dir, "v1");
        assertEquals(0, e.current());
        assertEquals(5, e.raise(5));
        assertEquals(5, e.raise(3), "lower epochs do not lower it");
        assertEquals(5, EpochFile.open(dir, "v1").current());
        assertFalse(Files.exists(dir.resolve("v1.epoch.tmp")));
    }

    @Test
    void corruptEpochFileIsRefused() throws IOException {
        EpochFile.open(dir, "v1").raise(7);
        byte[] b = Files.readAllBytes(dir.resolve("v1.epoch"));
        b[7] ^= 1;
        Files.write(dir.resolve("v1.epoch"), b);
        IOException ex = assertThrows(IOException.class, () -> EpochFile.open(dir, "v1"));
        assertTrue(ex.getMessage().contains("corrupt"), ex.getMessage());
    }
}
