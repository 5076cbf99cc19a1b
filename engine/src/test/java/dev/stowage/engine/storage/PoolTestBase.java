package dev.stowage.engine.storage;

import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;

/**
 * A pool in a fresh temporary directory, closed after each test, that a test can reopen the way a
 * node restart does. Subclasses that need it open before every test call {@link #reopen()} in
 * their own {@code @BeforeEach}.
 */
abstract class PoolTestBase {
    static final long MIB = 1L << 20;

    @TempDir
    Path dir;
    FileStoragePool pool;

    @AfterEach
    void closePool() throws IOException {
        if (pool != null) {
            pool.close();
        }
    }

    /** Closes the pool if it is open and opens it again from {@link #dir}; returns it. */
    FileStoragePool reopen() throws IOException {
        if (pool != null) {
            pool.close();
        }
        pool = openPool();
        return pool;
    }

    /** How {@link #reopen()} opens the pool; the default options unless a test needs others. */
    FileStoragePool openPool() throws IOException {
        return FileStoragePool.open(dir);
    }
}
