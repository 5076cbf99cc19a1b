package dev.stowage.engine.api.grpc;

import dev.stowage.engine.block.BlockTarget;
import dev.stowage.engine.frontend.Frontend;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A frontend that records exports instead of making block devices (which needs root): the device path
 * it hands out is a name, and {@link #exports()} shows what is exported now.
 */
public final class RecordingFrontend implements Frontend {
    private final Map<String, BlockTarget> exports = new ConcurrentHashMap<>();

    public Map<String, BlockTarget> exports() {
        return exports;
    }

    @Override
    public Export export(String volumeId, BlockTarget target, ExportOptions options) {
        exports.put(volumeId, target);
        Path device = Path.of("/dev/recorded-" + volumeId);
        return new Export() {
            @Override
            public String volumeId() {
                return volumeId;
            }

            @Override
            public Path devicePath() {
                return device;
            }

            @Override
            public void refreshSize() {}

            @Override
            public void close() {
                exports.remove(volumeId);
            }
        };
    }

    @Override
    public void cleanupStale(String volumeId) {}

    @Override
    public void close() {
        exports.clear();
    }
}
