package dev.stowage.engine.volume;

import dev.stowage.engine.block.BlockTarget;
import dev.stowage.engine.frontend.Frontend;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A test-only {@link Frontend} that needs no root: it records every export, hands out fake device
 * paths ({@code /dev/fake0}, {@code /dev/fake1}...) and can be told to fail the next export.
 *
 * <p>Threading: thread-safe (the service calls it under its own lock; tests read it afterwards).
 */
final class RecordingFrontend implements Frontend {
    private final AtomicInteger nextDevice = new AtomicInteger();
    private final AtomicReference<IOException> nextFailure = new AtomicReference<>();
    private final Map<String, RecordingExport> live = new ConcurrentHashMap<>();
    private final List<String> exported = new ArrayList<>();
    private final List<String> cleaned = new ArrayList<>();

    /** The next {@link #export} throws {@code failure} (once). */
    void failNextExport(IOException failure) {
        nextFailure.set(failure);
    }

    @Override
    public synchronized Export export(String volumeId, BlockTarget target, ExportOptions options) throws IOException {
        IOException failure = nextFailure.getAndSet(null);
        if (failure != null) {
            throw failure;
        }
        if (live.containsKey(volumeId)) {
            throw new IOException("volume " + volumeId + " is already exported");
        }
        RecordingExport e = new RecordingExport(volumeId, Path.of("/dev/fake" + nextDevice.getAndIncrement()),
                target, options);
        live.put(volumeId, e);
        exported.add(volumeId);
        return e;
    }

    @Override
    public synchronized void cleanupStale(String volumeId) {
        cleaned.add(volumeId);
    }

    /** The live export of a volume, or null. */
    RecordingExport live(String volumeId) {
        return live.get(volumeId);
    }

    /** Volume ids in the order they were exported successfully. */
    synchronized List<String> exported() {
        return List.copyOf(exported);
    }

    synchronized List<String> cleaned() {
        return List.copyOf(cleaned);
    }

    @Override
    public void close() {
        live.clear();
    }

    /** One fake export: remembers its target, options, size refreshes and whether it was closed. */
    final class RecordingExport implements Export {
        private final String volumeId;
        private final Path device;
        final BlockTarget target;
        final ExportOptions options;
        final AtomicInteger refreshes = new AtomicInteger();
        volatile long sizeAtLastRefresh = -1;
        volatile boolean closed;

        RecordingExport(String volumeId, Path device, BlockTarget target, ExportOptions options) {
            this.volumeId = volumeId;
            this.device = device;
            this.target = target;
            this.options = options;
        }

        @Override
        public String volumeId() {
            return volumeId;
        }

        @Override
        public Path devicePath() {
            return device;
        }

        @Override
        public void refreshSize() {
            sizeAtLastRefresh = target.sizeBytes();
            refreshes.incrementAndGet();
        }

        @Override
        public void close() {
            closed = true;
            live.remove(volumeId, this);
        }
    }
}
