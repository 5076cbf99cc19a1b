package dev.stowage.engine.storage;

import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;

/** The replica store contract against {@link LayeredReplicaStore} in a {@link FileStoragePool}. */
class LayeredReplicaStoreTest extends ReplicaStoreContract {
    @TempDir
    Path dir;
    private FileStoragePool pool;

    @Override
    protected ReplicaStore create(String volumeId, long sizeBytes) throws IOException {
        if (pool == null) {
            pool = FileStoragePool.open(dir);
        }
        return pool.create(volumeId, sizeBytes);
    }

    @Override
    protected ReplicaStore reopen(String volumeId) throws IOException {
        pool.close();
        pool = FileStoragePool.open(dir);
        return pool.open(volumeId).orElseThrow();
    }

    @AfterEach
    void closePool() throws IOException {
        if (pool != null) {
            pool.close();
        }
    }
}
