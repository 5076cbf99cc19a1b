package dev.stowage.engine.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/** Helpers shared by the storage tests. */
final class StorageTestSupport {
    static final int BS = ReplicaStore.BLOCK_SIZE;

    private StorageTestSupport() {}

    static byte[] pattern(long seed, int length) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    static byte[] read(ReplicaStore store, long offset, int length) throws IOException {
        ByteBuffer dst = ByteBuffer.allocate(length);
        store.read(offset, dst);
        return dst.array();
    }

    static void write(ReplicaStore store, long offset, byte[] data) throws IOException {
        store.write(offset, ByteBuffer.wrap(data));
    }

    /** Names of the files in the pool's layers directory. */
    static Set<String> layerFiles(Path dataDir) throws IOException {
        try (Stream<Path> files = Files.list(dataDir.resolve(FileStoragePool.LAYERS_DIR))) {
            return files.map(p -> p.getFileName().toString()).collect(Collectors.toCollection(TreeSet::new));
        }
    }
}
