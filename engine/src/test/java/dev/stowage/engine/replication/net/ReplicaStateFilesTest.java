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
