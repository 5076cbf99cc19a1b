package dev.stowage.engine.volume;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.cluster.EmbeddedMetadataStore;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.storage.FileStoragePool;
import dev.stowage.engine.storage.ReplicaStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * Base of the volume service tests: a {@link LocalVolumeService} on a real {@link FileStoragePool}
 * and a real {@link EmbeddedMetadataStore} in a temporary directory, with a {@link RecordingFrontend}
 * in place of the root-only FUSE frontend. Everything is closed after each test.
 */
abstract class VolumeServiceHarness {
    static final long KIB = 1024;
    static final long MIB = 1024 * KIB;
    static final long GIB = VolumeServiceConfig.GIB;
    static final String NODE = "node-a";

    @TempDir
    Path tempDir;

    FileStoragePool pool;
    EmbeddedMetadataStore metadata;
    RecordingFrontend frontend;
    LocalVolumeService service;

    /** The service's settings; tests override to change limits. */
    VolumeServiceConfig config() {
        return new VolumeServiceConfig(NODE, Map.of("zone", "z1", "rack", "r1"), 3, GIB, 16 * GIB, 4.0, true);
    }

    @BeforeEach
    void openAll() throws IOException {
        frontend = new RecordingFrontend();
        openStores();
        service = newService();
        service.start();
    }

    @AfterEach
    void closeAll() throws IOException {
        closeStores();
    }

    void openStores() throws IOException {
        pool = FileStoragePool.open(tempDir.resolve("pool"));
        metadata = EmbeddedMetadataStore.open(tempDir.resolve("metadata"));
    }

    /** Closes service, frontend, metadata and pool (each once, even if one fails). */
    void closeStores() throws IOException {
        try {
            if (service != null) {
                service.close();
            }
        } finally {
            service = null;
            try {
                frontend.close();
                if (metadata != null) {
                    metadata.close();
                }
            } finally {
                metadata = null;
                if (pool != null) {
                    FileStoragePool p = pool;
                    pool = null;
                    p.close();
                }
            }
        }
    }

    LocalVolumeService newService() {
        return new LocalVolumeService(config(), metadata, pool, frontend, Clock.systemUTC());
    }

    /** Simulates a node restart: everything closed, stores reopened from disk, a new service started. */
    void restart() throws IOException {
        closeStores();
        openStores();
        service = newService();
        service.start();
    }

    static VolumeSpec spec(String name, long required, long limit) {
        return new VolumeSpec(name, required, limit, Map.of(), new VolumeSpec.ContentSource.Empty());
    }

    Volume create(String name, long bytes) {
        return service.createVolume(spec(name, bytes, 0));
    }

    static StowageException fails(ErrorCode code, Executable call) {
        StowageException e = assertThrows(StowageException.class, call);
        assertEquals(code, e.code(), () -> "code of: " + e.getMessage());
        return e;
    }

    static StowageException fails(ErrorCode code, String field, Executable call) {
        StowageException e = fails(code, call);
        assertEquals(field, e.field(), () -> "field of: " + e.getMessage());
        return e;
    }

    /** Every key under /stowage/ in the metadata store. */
    List<String> metadataKeys() {
        return metadata.list("/stowage/").stream().map(MetadataStore.Versioned::key).toList();
    }

    ReplicaStore store(String volumeId) throws IOException {
        return pool.open(volumeId).orElseThrow(() -> new AssertionError("no pool volume " + volumeId));
    }

    static byte[] pattern(long seed, int length) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    void write(String volumeId, long offset, byte[] data) throws IOException {
        ReplicaStore s = store(volumeId);
        s.write(offset, ByteBuffer.wrap(data));
        s.flush();
    }

    byte[] read(String volumeId, long offset, int length) throws IOException {
        ByteBuffer dst = ByteBuffer.allocate(length);
        store(volumeId).read(offset, dst);
        return dst.array();
    }
}
