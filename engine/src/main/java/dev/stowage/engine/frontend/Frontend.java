package dev.stowage.engine.frontend;

import dev.stowage.engine.block.BlockTarget;
import java.io.IOException;
import java.nio.file.Path;

/**
 * How the kernel sees a volume: a frontend exports a {@link BlockTarget} as a block device.
 * The FUSE frontend serves one file per volume and puts a loop device on top; an NBD frontend
 * would hand out /dev/nbdN. Frontends depend on {@link BlockTarget} only.
 *
 * <p>Threading: thread-safe; exports of different volumes are independent.
 */
public interface Frontend extends AutoCloseable {

    /**
     * Exports {@code target} for {@code volumeId} and returns once the block device is usable.
     * On failure nothing is left behind (no mount, no loop device).
     */
    Export export(String volumeId, BlockTarget target, ExportOptions options) throws IOException;

    /**
     * Takes over the export an earlier process of this node left alive for {@code volumeId} (its
     * block device still in use by pods), now served from {@code target}; empty if there is none to
     * take over, and then nothing was changed. A frontend that cannot keep exports alive across a
     * restart always answers empty (the default).
     */
    default java.util.Optional<Export> resume(String volumeId, BlockTarget target, ExportOptions options)
            throws IOException {
        return java.util.Optional.empty();
    }

    /**
     * Removes what an earlier process left for {@code volumeId} (a dead FUSE mount, a loop device on
     * it) so that it can be exported again. Safe to call when there is nothing to clean.
     */
    void cleanupStale(String volumeId) throws IOException;

    /**
     * The volumes an earlier process of this node left something of an export for (what
     * {@link #cleanupStale} would clean), found without touching any mount. Empty by default.
     */
    default java.util.Set<String> leftovers() throws IOException {
        return java.util.Set.of();
    }

    /** Tears down every export. */
    @Override
    void close();

    /** Options of one export. */
    record ExportOptions(boolean readOnly, boolean directIo) {
        public static ExportOptions defaults() {
            return new ExportOptions(false, true);
        }
    }

    /** A live export. Closing it removes the block device and the export, in that order. */
    interface Export extends AutoCloseable {
        String volumeId();

        /** The block device the kernel uses, e.g. /dev/loop3. */
        Path devicePath();

        /** Tells the kernel the target's size changed (after an online resize). */
        void refreshSize() throws IOException;

        /**
         * Stops serving, for a process that is shutting down and will come back: where the
         * frontend can keep the export alive for the next process ({@link Frontend#resume}), the
         * block device stays and its I/O waits; elsewhere this is {@link #close}.
         */
        default void leave() throws IOException {
            close();
        }

        @Override
        void close() throws IOException;
    }
}
