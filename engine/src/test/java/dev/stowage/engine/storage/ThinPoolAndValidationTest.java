package dev.stowage.engine.storage;

import static dev.stowage.engine.storage.StorageTestSupport.BS;
import static dev.stowage.engine.storage.StorageTestSupport.pattern;
import static dev.stowage.engine.storage.StorageTestSupport.read;
import static dev.stowage.engine.storage.StorageTestSupport.write;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.FileAlreadyExistsException;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Thin provisioning, input validation and pool lifecycle. */
class ThinPoolAndValidationTest extends PoolTestBase {
    private static final long TIB = 1L << 40;

    @BeforeEach
    void open() throws IOException {
        reopen();
    }

    @Test
    void theLargestVolumeIsWhatTheFileSystemCanHoldAndItsLastBlockWorks() throws IOException {
        long max = pool.maxVolumeBytes();
        assertTrue(max > 0 && max <= 64 * TIB && max % 4096 == 0, "max " + max);
        if (FileStoragePool.LAYER_DATA_OFFSET + 64 * TIB > 16 * TIB - 4096
                && java.nio.file.Files.getFileStore(dir).type().equals("ext4")) {
            assertEquals(16 * TIB - 4096 - FileStoragePool.LAYER_DATA_OFFSET, max, "ext4 caps files at 16 TiB - 4 KiB");
        }
        ReplicaStore vol = pool.create("largest", max);
        byte[] last = pattern(3, 4096);
        write(vol, max - 4096, last); // where mkfs puts a backup superblock
        vol.flush();
        assertArrayEquals(last, read(vol, max - 4096, 4096));
        if (max < 64 * TIB) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> pool.create("too-big", max + 4096));
            assertTrue(e.getMessage().startsWith("sizeBytes " + (max + 4096) + " exceeds the largest volume pool"),
                    e.getMessage());
            IllegalArgumentException grow = assertThrows(IllegalArgumentException.class, () -> vol.resize(max + 4096));
            assertTrue(grow.getMessage().startsWith("newSizeBytes"), grow.getMessage());
            assertEquals(max, vol.sizeBytes());
        }
        assertTrue(java.nio.file.Files.notExists(dir.resolve("size-probe.tmp")), "the probe file is gone");
    }

    @Test
    void aTebibyteVolumeCostsAlmostNothingUntilWritten() throws IOException {
        ReplicaStore vol = pool.create("big", TIB);
        assertTrue(vol.allocatedBytes() < 64 * 1024, "empty: " + vol.allocatedBytes());
        byte[] data = pattern(1, (int) MIB);
        write(vol, TIB / 2, data);
        vol.flush();
        long allocated = vol.allocatedBytes();
        assertTrue(allocated >= MIB && allocated < 2 * MIB, "1 MiB written: " + allocated);
        assertArrayEquals(data, read(vol, TIB / 2, data.length));
    }

    @Test
    void zerosWrittenWhereNoLayerHoldsDataAllocateNothingAndZerosOverDataAreStored() throws IOException {
        LayeredReplicaStore vol = (LayeredReplicaStore) pool.create("z", 64 * MIB);
        write(vol, 0, new byte[(int) MIB]); // a whole region of zeros, as a resync copies one
        vol.flush();
        assertTrue(vol.allocatedBytes() < 64 * 1024, "zeros over nothing: " + vol.allocatedBytes());
        assertEquals(MIB / BS, vol.zeroBlocksSkipped());
        assertArrayEquals(new byte[(int) MIB], read(vol, 0, (int) MIB));

        // data, zeros, data in one write: the two data blocks are stored, the zeros between are not
        byte[] mixed = new byte[3 * BS];
        System.arraycopy(pattern(1, BS), 0, mixed, 0, BS);
        System.arraycopy(pattern(2, BS), 0, mixed, 2 * BS, BS);
        write(vol, 8 * MIB, mixed);
        vol.flush();
        assertArrayEquals(mixed, read(vol, 8 * MIB, 3 * BS));
        assertEquals(MIB / BS + 1, vol.zeroBlocksSkipped());
        long afterMixed = vol.allocatedBytes();
        assertTrue(afterMixed >= 2 * BS && afterMixed < 2 * BS + 64 * 1024, "two blocks and a table page: " + afterMixed);

        // zeros over the volume's own data, and over data a snapshot layer below holds, must be stored
        write(vol, 16 * MIB, pattern(3, BS));
        pool.snapshot("z", "before-zeros");
        write(vol, 8 * MIB, new byte[BS]);
        write(vol, 16 * MIB, new byte[BS]);
        assertEquals(MIB / BS + 1, vol.zeroBlocksSkipped(), "nothing skipped over held blocks");
        assertArrayEquals(new byte[BS], read(vol, 8 * MIB, BS));
        assertArrayEquals(new byte[BS], read(vol, 16 * MIB, BS));
        reopen();
        ReplicaStore again = pool.open("z").orElseThrow();
        assertArrayEquals(new byte[(int) MIB], read(again, 0, (int) MIB));
        assertArrayEquals(new byte[BS], read(again, 8 * MIB, BS));
        assertArrayEquals(pattern(2, BS), read(again, 8 * MIB + 2 * BS, BS));
        assertArrayEquals(new byte[BS], read(again, 16 * MIB, BS));
    }

    @Test
    void unwrittenRangesAreReadWithoutTouchingTheDataFile() throws IOException {
        ReplicaStore vol = pool.create("big", TIB);
        write(vol, 7 * BS, pattern(1, BS));
        pool.snapshot("big", "s"); // two layers to look through
        write(vol, 9 * BS, pattern(2, BS));
        Layer head = ((LayeredReplicaStore) vol).head();
        Layer below = head.parent;
        long headReads = head.dataReads();
        long belowReads = below.dataReads();

        assertArrayEquals(new byte[(int) MIB], read(vol, TIB - MIB, (int) MIB));
        assertArrayEquals(new byte[3 * BS], read(vol, 100 * BS + 5, 3 * BS));
        assertArrayEquals(new byte[BS], read(vol, 8 * BS, BS));
        assertEquals(headReads, head.dataReads(), "no data-file read in the head layer");
        assertEquals(belowReads, below.dataReads(), "no data-file read in the snapshot layer");

        assertArrayEquals(pattern(1, BS), read(vol, 7 * BS, BS));
        assertEquals(belowReads + 1, below.dataReads());
        assertEquals(headReads, head.dataReads());
    }

    @Test
    void idsAndSizesAreValidatedNamingTheParameter() throws IOException {
        for (String bad : new String[] {"", ".", "..", "a/b", "../x", "a b", "x".repeat(129), "é"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> pool.create(bad, MIB));
            assertTrue(e.getMessage().startsWith("volumeId"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> pool.create(null, MIB));
        IllegalArgumentException size = assertThrows(IllegalArgumentException.class, () -> pool.create("v", 0));
        assertTrue(size.getMessage().startsWith("sizeBytes"), size.getMessage());
        assertThrows(IllegalArgumentException.class, () -> pool.create("v", -1));
        pool.create("ok-1._X", MIB);
        assertThrows(FileAlreadyExistsException.class, () -> pool.create("ok-1._X", MIB));
        IllegalArgumentException snap = assertThrows(IllegalArgumentException.class,
                () -> pool.snapshot("ok-1._X", "../s"));
        assertTrue(snap.getMessage().startsWith("snapshotId"), snap.getMessage());
        assertThrows(IllegalArgumentException.class, () -> pool.cloneVolume("..", "c", MIB));
        assertThrows(IllegalArgumentException.class, () -> pool.snapshotExists("/"));
        assertThrows(IllegalArgumentException.class, () -> pool.open("a\u0000b"));
        assertThrows(IllegalArgumentException.class, () -> pool.delete(".."));
    }

    @Test
    void openReturnsTheSameStoreAndOnlyOnePoolOwnsADirectory() throws IOException {
        ReplicaStore a = pool.create("v", MIB);
        a.close(); // a caller closing its reference changes nothing: the pool owns the store
        assertSame(a, pool.open("v").orElseThrow());
        write(a, 0, pattern(1, 10));
        assertTrue(pool.open("missing").isEmpty());
        IOException busy = assertThrows(IOException.class, () -> FileStoragePool.open(dir));
        assertTrue(busy.getMessage().contains("already open"), busy.getMessage());

        pool.close();
        assertThrows(IOException.class, () -> a.read(0, ByteBuffer.allocate(1)), "closed pool refuses I/O");
        assertThrows(IOException.class, () -> pool.create("w", MIB));
        pool.close(); // idempotent
        pool = FileStoragePool.open(dir);
        assertArrayEquals(pattern(1, 10), read(pool.open("v").orElseThrow(), 0, 10), "close flushed");
    }

    @Test
    void capacityComesFromTheFileSystem() throws IOException {
        long capacity = pool.capacityBytes();
        long free = pool.freeBytes();
        assertTrue(capacity > 0);
        assertTrue(free >= 0 && free <= capacity, free + " of " + capacity);
    }
}
