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
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

/** Corruption detection, torn-write recovery, orphan cleanup and manifest atomicity. */
class IntegrityAndRecoveryTest extends PoolTestBase {

    private static int crc(byte[] b) {
        CRC32C c = new CRC32C();
        c.update(b);
        return (int) c.getValue();
    }

    private static void flipBit(Path file, long offset) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer one = ByteBuffer.allocate(1);
            ch.read(one, offset);
            one.put(0, (byte) (one.get(0) ^ 0x10)).rewind();
            ch.write(one, offset);
            ch.force(true);
        }
    }

    /** A bulk write (O_DIRECT, a resync's copy) is checksummed like any other: a flipped bit is caught. */
    @Test
    void aFlippedBitInABulkWrittenRegionIsDetected() throws IOException {
        ReplicaStore vol = reopen().create("vol", 4 * MIB);
        ByteBuffer aligned = ByteBuffer.allocateDirect((int) MIB + BS).alignedSlice(BS);
        aligned.put(pattern(3, (int) MIB)).flip();
        vol.writeBulk(MIB, aligned);
        vol.flush();
        Path data = ((LayeredReplicaStore) vol).head().path();
        reopen();
        flipBit(data, Layer.DATA_OFFSET + MIB + 9L * BS + 17);
        ReplicaStore again = pool.open("vol").orElseThrow();
        ChecksumMismatchException e = assertThrows(ChecksumMismatchException.class, () -> read(again, MIB, (int) MIB));
        assertEquals(256 + 9, e.blockIndex());
        assertArrayEquals(java.util.Arrays.copyOfRange(pattern(3, (int) MIB), 0, 9 * BS), read(again, MIB, 9 * BS));
    }

    @Test
    void aFlippedBitIsDetectedNeverReturned() throws IOException {
        ReplicaStore vol = reopen().create("vol", 4 * MIB);
        write(vol, 0, pattern(1, 8 * BS));
        vol.flush();
        Path data = ((LayeredReplicaStore) vol).head().path();
        reopen();
        flipBit(data, Layer.DATA_OFFSET + 5L * BS + 1234);
        ReplicaStore again = pool.open("vol").orElseThrow();

        ChecksumMismatchException e = assertThrows(ChecksumMismatchException.class, () -> read(again, 0, 8 * BS));
        assertEquals(5, e.blockIndex());
        assertEquals("vol", e.volumeId());
        assertThrows(ChecksumMismatchException.class, () -> read(again, 5L * BS + 10, 1), "unaligned read too");
        assertThrows(ChecksumMismatchException.class, () -> write(again, 5L * BS + 10, new byte[1]),
                "a partial write cannot merge into a corrupt block");
        assertArrayEquals(java.util.Arrays.copyOfRange(pattern(1, 8 * BS), 0, 5 * BS), read(again, 0, 5 * BS));

        byte[] fresh = pattern(2, BS);
        write(again, 5L * BS, fresh); // a whole-block write replaces the corrupt block
        assertArrayEquals(fresh, read(again, 5L * BS, BS));
    }

    @Test
    void corruptionInASnapshotLayerIsDetectedThroughTheVolume() throws IOException {
        ReplicaStore vol = reopen().create("vol", 4 * MIB);
        write(vol, 0, pattern(1, 2 * BS));
        pool.snapshot("vol", "s");
        Path frozen = pool.snapshotLayer("s").path();
        reopen();
        flipBit(frozen, Layer.DATA_OFFSET + BS + 7);
        ReplicaStore again = pool.open("vol").orElseThrow();
        assertThrows(ChecksumMismatchException.class, () -> read(again, BS, BS));
        assertArrayEquals(java.util.Arrays.copyOf(pattern(1, 2 * BS), BS), read(again, 0, BS));
    }

    @Test
    void aTornOverwriteReadsTheOldContent() throws IOException {
        ReplicaStore vol = reopen().create("vol", 4 * MIB);
        byte[] old = pattern(1, BS);
        write(vol, 3L * BS, old);
        vol.flush();
        // The crash: the table entry for the new content is stored, its data never lands.
        Layer head = ((LayeredReplicaStore) vol).head();
        long entry = head.table.get(3);
        head.table.put(3, ChecksumTable.encode(crc(pattern(2, BS)), entry));
        head.force();
        reopen();
        ReplicaStore again = pool.open("vol").orElseThrow();
        assertArrayEquals(old, read(again, 3L * BS, BS));
        assertEquals(ChecksumTable.encodeClean(crc(old)),
                ((LayeredReplicaStore) again).head().table.get(3), "the entry is repaired");
        byte[] next = pattern(3, 100);
        write(again, 3L * BS + 50, next); // and the block takes writes again
        byte[] expected = old.clone();
        System.arraycopy(next, 0, expected, 50, next.length);
        assertArrayEquals(expected, read(again, 3L * BS, BS));
    }

    @Test
    void aTornFirstWriteReadsWhatLiesBelow() throws IOException {
        ReplicaStore vol = reopen().create("vol", 4 * MIB);
        byte[] below = pattern(1, BS);
        write(vol, 0, below);
        pool.snapshot("vol", "s");
        Layer head = ((LayeredReplicaStore) vol).head();
        head.table.put(0, ChecksumTable.encode(crc(pattern(2, BS)), ChecksumTable.ABSENT)); // over the snapshot
        head.table.put(9, ChecksumTable.encode(crc(pattern(3, BS)), ChecksumTable.ABSENT)); // never written
        head.force();
        reopen();
        ReplicaStore again = pool.open("vol").orElseThrow();
        assertArrayEquals(below, read(again, 0, BS));
        assertArrayEquals(new byte[2 * BS], read(again, 8L * BS, 2 * BS));
        assertEquals(ChecksumTable.ABSENT, ((LayeredReplicaStore) again).head().table.get(9));
    }

    @Test
    void zeroCrcContentIsRepresentable() {
        long entry = ChecksumTable.encodeClean(0);
        assertTrue(ChecksumTable.present(entry));
        assertEquals(0, ChecksumTable.current(entry));
        long next = ChecksumTable.encode(-1, entry);
        assertTrue(ChecksumTable.previousMatches(next, 0));
        assertFalse(ChecksumTable.previousMatches(ChecksumTable.encode(5, ChecksumTable.ABSENT), 0));
    }

    @Test
    void openRemovesOrphansAndLeftoverTemporaryManifest() throws IOException {
        reopen().create("vol", MIB);
        Set<String> files = layerFiles(dir);
        pool.close();
        pool = null;
        Path layers = dir.resolve(FileStoragePool.LAYERS_DIR);
        Files.write(layers.resolve("L0000000000000099" + Layer.FILE_SUFFIX), new byte[10]);
        Files.write(layers.resolve("L0000000000000099" + UnsettledRegions.FILE_SUFFIX), new byte[8]);
        Files.write(layers.resolve("notes.txt"), new byte[1]);
        Files.writeString(dir.resolve(PoolManifest.TEMP_NAME), "half a manifest");
        reopen();
        Set<String> expected = new java.util.TreeSet<>(files);
        expected.add("notes.txt");
        assertEquals(expected, layerFiles(dir), "orphans gone, unknown files left alone");
        assertFalse(Files.exists(dir.resolve(PoolManifest.TEMP_NAME)));
        assertEquals(Set.of("vol"), pool.volumeIds());
    }

    @Test
    void aFailedCommitLeavesNothingHalfMade() throws IOException {
        AtomicBoolean fail = new AtomicBoolean();
        pool = FileStoragePool.open(dir, tmp -> {
            if (fail.get()) {
                throw new IOException("injected failure before rename");
            }
        });
        ReplicaStore vol = pool.create("vol", MIB);
        write(vol, 0, pattern(1, BS));
        pool.snapshot("vol", "s");
        Set<String> files = layerFiles(dir);
        Set<String> layerIds = pool.layerIds();
        Layer head = ((LayeredReplicaStore) vol).head();
        String manifest = Files.readString(dir.resolve(PoolManifest.FILE_NAME));

        fail.set(true);
        assertThrows(IOException.class, () -> pool.create("new", MIB));
        assertThrows(IOException.class, () -> pool.snapshot("vol", "s2"));
        assertThrows(IOException.class, () -> pool.cloneVolume("vol", "clone", MIB));
        assertThrows(IOException.class, () -> pool.createFromSnapshot("s", "fromS", MIB));
        assertThrows(IOException.class, () -> vol.resize(2 * MIB));
        assertThrows(IOException.class, () -> pool.delete("vol"));
        assertThrows(IOException.class, () -> pool.deleteSnapshot("s"));

        assertEquals(Set.of("vol"), pool.volumeIds());
        assertTrue(pool.snapshotExists("s"));
        assertFalse(pool.snapshotExists("s2"));
        assertEquals(MIB, vol.sizeBytes());
        assertEquals(head, ((LayeredReplicaStore) vol).head(), "the volume still writes its old head");
        assertEquals(layerIds, pool.layerIds());
        assertEquals(files, layerFiles(dir), "no layer files of failed operations remain");
        assertEquals(manifest, Files.readString(dir.resolve(PoolManifest.FILE_NAME)));
        assertFalse(Files.exists(dir.resolve(PoolManifest.TEMP_NAME)));

        fail.set(false);
        write(vol, BS, pattern(2, BS));
        pool.create("new", MIB); // ids of failed attempts are not reused, nothing collides
        vol.flush();
        reopen();
        assertEquals(Set.of("vol", "new"), pool.volumeIds());
        assertArrayEquals(pattern(2, BS), read(pool.open("vol").orElseThrow(), BS, BS));
    }

    @Test
    void aDamagedManifestIsRefusedWithAClearError() throws IOException {
        reopen().create("vol", MIB);
        pool.close();
        pool = null;
        Path manifest = dir.resolve(PoolManifest.FILE_NAME);
        String text = Files.readString(manifest);
        Files.writeString(manifest, text.replace("1048576", "2097152"));
        IOException e = assertThrows(IOException.class, () -> FileStoragePool.open(dir));
        assertTrue(e.getMessage().contains("crc32c"), e.getMessage());
        Files.writeString(manifest, text);
        reopen();
        assertEquals(MIB, pool.open("vol").orElseThrow().sizeBytes());
    }

    @Test
    void manifestReferencesAreValidated() {
        String body = "stowage-pool-manifest 2\nnext-layer 3\nlayer L0000000000000001 -\n"
                + "volume v L0000000000000002 4096\n";
        IOException e = assertThrows(IOException.class, () -> PoolManifest.parse("m", withCrc(body)));
        assertTrue(e.getMessage().contains("volume v has unknown layer"), e.getMessage());
        String shared = "stowage-pool-manifest 2\nnext-layer 3\nlayer L0000000000000001 -\n"
                + "volume v L0000000000000001 4096\nsnapshot s L0000000000000001 4096 v\n";
        e = assertThrows(IOException.class, () -> PoolManifest.parse("m", withCrc(shared)));
        assertTrue(e.getMessage().contains("is shared"), e.getMessage());
        String badId = "stowage-pool-manifest 2\nnext-layer 3\nvolume ../x L0000000000000001 4096\n";
        e = assertThrows(IOException.class, () -> PoolManifest.parse("m", withCrc(badId)));
        assertTrue(e.getMessage().contains("m line 3"), e.getMessage());
        String formatOne = body.replace("manifest 2", "manifest 1");
        e = assertThrows(IOException.class, () -> PoolManifest.parse("m", withCrc(formatOne)));
        assertTrue(e.getMessage().contains("pool format 1"), e.getMessage());
    }

    private static String withCrc(String body) {
        CRC32C c = new CRC32C();
        c.update(body.getBytes(StandardCharsets.UTF_8));
        return body + String.format("crc32c %08x%n", (int) c.getValue());
    }
}
