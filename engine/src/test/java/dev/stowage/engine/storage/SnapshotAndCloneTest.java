package dev.stowage.engine.storage;

import static dev.stowage.engine.storage.StorageTestSupport.BS;
import static dev.stowage.engine.storage.StorageTestSupport.layerFiles;
import static dev.stowage.engine.storage.StorageTestSupport.pattern;
import static dev.stowage.engine.storage.StorageTestSupport.read;
import static dev.stowage.engine.storage.StorageTestSupport.write;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.util.Set;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Copy-on-write snapshots, volumes from snapshots, clones and reference-counted deletion. */
class SnapshotAndCloneTest extends PoolTestBase {
    private static final long GIB = 1L << 30;

    @BeforeEach
    void open() throws IOException {
        reopen();
    }

    private ReplicaStore volume(String id) throws IOException {
        return pool.open(id).orElseThrow();
    }

    @Test
    void snapshotCostDoesNotDependOnVolumeSize() throws IOException {
        ReplicaStore small = pool.create("small", GIB);
        ReplicaStore huge = pool.create("huge", 1L << 40);
        for (ReplicaStore s : new ReplicaStore[] {small, huge}) {
            write(s, 0, pattern(1, (int) MIB));
            write(s, s.sizeBytes() - MIB, pattern(2, (int) MIB));
            s.flush();
        }
        for (String v : new String[] {"small", "huge"}) {
            Layer frozen = ((LayeredReplicaStore) volume(v)).head();
            long frozenSize = Files.size(frozen.path());
            Set<String> before = layerFiles(dir);

            pool.snapshot(v, "snap-" + v);

            Set<String> after = layerFiles(dir);
            assertEquals(before.size() + 2, after.size(), "a snapshot adds exactly one layer (two files)");
            Layer head = ((LayeredReplicaStore) volume(v)).head();
            assertEquals(frozen, head.parent);
            assertEquals(0, Files.size(head.path()), "new head holds no data and no checksums");
            assertEquals(0, Files.size(head.unsettled.path()), "and no unsettled regions");
            assertEquals(frozenSize, Files.size(frozen.path()), "frozen layer is not copied or grown");
            assertEquals(volume(v).sizeBytes(), pool.snapshotSizeBytes("snap-" + v));
        }
        assertArrayEquals(pattern(2, (int) MIB), read(huge, huge.sizeBytes() - MIB, (int) MIB));
    }

    @Test
    void snapshotsClonesAndDeletionKeepEveryReaderCorrect() throws IOException {
        ReplicaStore vol = pool.create("vol", 4 * MIB);
        byte[] a = pattern(10, 3 * BS);
        byte[] b = pattern(11, 2 * BS);
        byte[] c = pattern(12, BS + 100);
        write(vol, 0, a);
        pool.snapshot("vol", "s1");
        write(vol, BS, b);             // overwrites part of a
        write(vol, 2 * MIB, c);        // new region
        pool.snapshot("vol", "s2");
        ReplicaStore clone = pool.createFromSnapshot("s1", "c", 8 * MIB); // larger than its source
        byte[] d = pattern(13, BS);
        write(vol, 0, d);              // volume moves on after s2
        write(clone, 5 * MIB, d);      // clone writes beyond the source's size

        pool.deleteSnapshot("s1");
        assertFalse(pool.snapshotExists("s1"));

        byte[] s1View = a.clone();
        byte[] s2View = a.clone();
        System.arraycopy(b, 0, s2View, BS, b.length);
        byte[] volView = s2View.clone();
        System.arraycopy(d, 0, volView, 0, BS);

        for (int round = 0; round < 2; round++) {   // before and after a restart
            clone = volume("c");
            vol = volume("vol");
            assertEquals(8 * MIB, clone.sizeBytes());
            assertArrayEquals(s1View, read(clone, 0, s1View.length), "clone reads s1");
            assertArrayEquals(new byte[c.length], read(clone, 2 * MIB, c.length), "clone predates c");
            assertArrayEquals(d, read(clone, 5 * MIB, BS));
            assertArrayEquals(volView, read(vol, 0, volView.length));
            assertArrayEquals(c, read(vol, 2 * MIB, c.length));
            ReplicaStore fromS2 = pool.createFromSnapshot("s2", "from-s2-" + round, 4 * MIB);
            assertArrayEquals(s2View, read(fromS2, 0, s2View.length), "s2 reads its own time");
            assertArrayEquals(c, read(fromS2, 2 * MIB, c.length));
            pool.delete("from-s2-" + round);
            vol.flush();
            clone.flush();
            reopen();
        }

        pool.delete("vol");
        assertArrayEquals(s1View, read(volume("c"), 0, s1View.length), "deleting the volume leaves the clone");
        assertArrayEquals(s2View, read(pool.createFromSnapshot("s2", "late", 4 * MIB), 0, s2View.length),
                "deleting the volume leaves its snapshot");
    }

    @Test
    void deletingEverythingRemovesEveryFile() throws IOException {
        ReplicaStore vol = pool.create("vol", 4 * MIB);
        write(vol, 0, pattern(1, BS));
        pool.snapshot("vol", "s1");
        write(vol, 0, pattern(2, BS));
        pool.snapshot("vol", "s2");
        pool.createFromSnapshot("s1", "c", 4 * MIB);
        pool.deleteSnapshot("s1");

        pool.delete("vol");
        assertThrows(IOException.class, () -> vol.read(0, java.nio.ByteBuffer.allocate(1)), "deleted store refuses I/O");
        assertTrue(pool.open("vol").isEmpty());
        assertArrayEquals(pattern(2, BS), read(pool.createFromSnapshot("s2", "x", 4 * MIB), 0, BS));
        pool.delete("x");
        pool.deleteSnapshot("s2");
        Layer cHead = ((LayeredReplicaStore) volume("c")).head();
        assertEquals(Set.of(cHead.id, cHead.parent.id), pool.layerIds(), "only the clone's chain is left");
        assertEquals(Set.of(cHead.id + Layer.FILE_SUFFIX, cHead.parent.id + Layer.FILE_SUFFIX,
                        cHead.id + UnsettledRegions.FILE_SUFFIX, cHead.parent.id + UnsettledRegions.FILE_SUFFIX),
                layerFiles(dir),
                "the volume's and s2's layer files are removed");
        assertArrayEquals(pattern(1, BS), read(volume("c"), 0, BS), "s1's layer lives on under the clone");
        pool.delete("c");
        assertEquals(Set.of(), layerFiles(dir), "no layer file outlives its last reference");
        assertEquals(Set.of(), pool.layerIds());
        pool.delete("c");             // missing: no-op
        pool.deleteSnapshot("s2");    // missing: no-op
        reopen();
        assertEquals(Set.of(), pool.volumeIds());
    }

    @Test
    void cloneReadsTheSourceAtCloneTimeAndBothMoveOnIndependently() throws IOException {
        ReplicaStore src = pool.create("src", 2 * MIB);
        byte[] a = pattern(20, 4 * BS);
        write(src, 0, a);
        ReplicaStore clone = pool.cloneVolume("src", "dst", 3 * MIB);
        assertEquals(3 * MIB, clone.sizeBytes());
        byte[] b = pattern(21, BS);
        write(src, 0, b);
        byte[] c = pattern(22, BS);
        write(clone, BS, c);

        byte[] srcView = a.clone();
        System.arraycopy(b, 0, srcView, 0, BS);
        byte[] cloneView = a.clone();
        System.arraycopy(c, 0, cloneView, BS, BS);
        assertArrayEquals(srcView, read(src, 0, srcView.length));
        assertArrayEquals(cloneView, read(clone, 0, cloneView.length));
        assertEquals(Set.of("src", "dst"), pool.volumeIds());
        assertEquals(3, pool.layerIds().size(), "frozen source layer plus two heads, no snapshot record");
        src.flush();
        clone.flush();

        pool.delete("src");
        reopen();
        assertArrayEquals(cloneView, read(volume("dst"), 0, cloneView.length));
        assertThrows(IllegalArgumentException.class, () -> pool.cloneVolume("dst", "small", MIB));
        assertThrows(NoSuchFileException.class, () -> pool.cloneVolume("src", "again", 2 * MIB));
        assertThrows(FileAlreadyExistsException.class, () -> pool.cloneVolume("dst", "dst", 3 * MIB));
    }

    @Test
    void snapshotRulesAreEnforced() throws IOException {
        pool.create("vol", 2 * MIB);
        pool.snapshot("vol", "s");
        assertThrows(FileAlreadyExistsException.class, () -> pool.snapshot("vol", "s"));
        assertThrows(NoSuchFileException.class, () -> pool.snapshot("nope", "t"));
        assertThrows(NoSuchFileException.class, () -> pool.createFromSnapshot("nope", "v2", 2 * MIB));
        assertThrows(NoSuchFileException.class, () -> pool.snapshotSizeBytes("nope"));
        IllegalArgumentException small = assertThrows(IllegalArgumentException.class,
                () -> pool.createFromSnapshot("s", "v2", MIB));
        assertTrue(small.getMessage().contains("sizeBytes"), small.getMessage());
        assertThrows(FileAlreadyExistsException.class, () -> pool.createFromSnapshot("s", "vol", 2 * MIB));
        assertEquals("vol", pool.snapshotSourceVolumeId("s"));
        pool.volumeIds().forEach(v -> assertFalse(v.startsWith("s"), "snapshots are not volumes"));
    }
}
