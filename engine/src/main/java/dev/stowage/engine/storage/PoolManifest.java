package dev.stowage.engine.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.zip.CRC32C;

/**
 * The structure of a pool (layers and their parents, volumes, snapshots, sizes), kept in one text
 * file that is replaced atomically: write a temporary file, fsync it, rename it over the old one,
 * fsync the directory. A crash leaves the old or the new manifest, never a mix.
 *
 * <pre>
 * stowage-pool-manifest 1
 * next-layer 7
 * layer L0000000000000001 -
 * layer L0000000000000003 L0000000000000001
 * volume pvc-1 L0000000000000003 1073741824
 * snapshot snap-1 L0000000000000001 1073741824 pvc-1
 * crc32c 0a1b2c3d
 * </pre>
 *
 * The last line is the crc32c of everything before it; a manifest that fails it, or that breaks
 * any reference, is rejected with an error naming the line.
 *
 * <p>Threading: not thread-safe; the pool edits a {@link #copy()} under its lock and swaps it in
 * only after {@link #write} succeeded.
 */
final class PoolManifest {
    static final String FILE_NAME = "manifest";
    static final String TEMP_NAME = "manifest.tmp";
    /** Format 2: one file per layer (table and data); format 1 kept them in two files. */
    private static final String MAGIC = "stowage-pool-manifest 2";
    private static final String MAGIC_FORMAT_1 = "stowage-pool-manifest 1\n";

    record LayerRecord(String id, String parentId) {}

    record VolumeRecord(String id, String layerId, long sizeBytes) {}

    record SnapshotRecord(String id, String layerId, long sizeBytes, String sourceVolumeId) {}

    /** A point between writing and publishing the manifest where tests inject failures. */
    interface CommitHook {
        CommitHook NONE = tmp -> { };

        void beforeRename(Path tempFile) throws IOException;
    }

    long nextLayer = 1;
    final Map<String, LayerRecord> layers = new TreeMap<>();
    final Map<String, VolumeRecord> volumes = new TreeMap<>();
    final Map<String, SnapshotRecord> snapshots = new TreeMap<>();

    PoolManifest copy() {
        PoolManifest m = new PoolManifest();
        m.nextLayer = nextLayer;
        m.layers.putAll(layers);
        m.volumes.putAll(volumes);
        m.snapshots.putAll(snapshots);
        return m;
    }

    /** Allocates a new layer id and records the layer. */
    String addLayer(String parentId) {
        String id = String.format("L%016d", nextLayer++);
        layers.put(id, new LayerRecord(id, parentId));
        return id;
    }

    /**
     * Removes every layer that no volume, snapshot or child layer references (transitively) and
     * returns their ids.
     */
    List<String> collectGarbage() {
        List<String> removed = new ArrayList<>();
        boolean changed = true;
        while (changed) {
            Set<String> referenced = new HashSet<>();
            volumes.values().forEach(v -> referenced.add(v.layerId()));
            snapshots.values().forEach(s -> referenced.add(s.layerId()));
            layers.values().forEach(l -> {
                if (l.parentId() != null) {
                    referenced.add(l.parentId());
                }
            });
            changed = layers.keySet().removeIf(id -> {
                if (referenced.contains(id)) {
                    return false;
                }
                removed.add(id);
                return true;
            });
        }
        return removed;
    }

    // ---- persistence ----

    String serialise() {
        StringBuilder b = new StringBuilder();
        b.append(MAGIC).append('\n');
        b.append("next-layer ").append(nextLayer).append('\n');
        for (LayerRecord l : layers.values()) {
            b.append("layer ").append(l.id()).append(' ').append(l.parentId() == null ? "-" : l.parentId()).append('\n');
        }
        for (VolumeRecord v : volumes.values()) {
            b.append("volume ").append(v.id()).append(' ').append(v.layerId()).append(' ').append(v.sizeBytes()).append('\n');
        }
        for (SnapshotRecord s : snapshots.values()) {
            b.append("snapshot ").append(s.id()).append(' ').append(s.layerId()).append(' ').append(s.sizeBytes())
                    .append(' ').append(s.sourceVolumeId()).append('\n');
        }
        int crc = crc(b.toString());
        b.append("crc32c ").append(String.format("%08x", crc)).append('\n');
        return b.toString();
    }

    /** Atomically replaces {@code dir/manifest} with this manifest. */
    void write(Path dir, CommitHook hook) throws IOException {
        Path tmp = dir.resolve(TEMP_NAME);
        byte[] bytes = serialise().getBytes(StandardCharsets.UTF_8);
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer buf = ByteBuffer.wrap(bytes);
            while (buf.hasRemaining()) {
                ch.write(buf);
            }
            ch.force(true);
        }
        try {
            hook.beforeRename(tmp);
            Files.move(tmp, dir.resolve(FILE_NAME), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.deleteIfExists(tmp);
            throw new IOException("file system of " + dir + " cannot rename atomically", e);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        DurableFiles.fsyncDirectory(dir);
    }

    static PoolManifest read(Path file) throws IOException {
        if (!Files.exists(file)) {
            throw new NoSuchFileException(file.toString());
        }
        return parse(file.toString(), Files.readString(file, StandardCharsets.UTF_8));
    }

    static PoolManifest parse(String source, String text) throws IOException {
        if (text.startsWith(MAGIC_FORMAT_1)) {
            throw new IOException(source + ": pool format 1 (a .data and a .crc file per layer) is not read by this"
                    + " version, which keeps one .layer file per layer; move the volumes off this pool with the"
                    + " version that wrote it, or re-create the pool");
        }
        int end = text.lastIndexOf("crc32c ");
        if (!text.startsWith(MAGIC + "\n") || end < 0 || !text.endsWith("\n")) {
            throw new IOException(source + ": not a complete stowage pool manifest (missing header or crc32c line)");
        }
        String body = text.substring(0, end);
        String crcText = text.substring(end + "crc32c ".length(), text.length() - 1);
        int expected;
        try {
            expected = Integer.parseUnsignedInt(crcText, 16);
        } catch (NumberFormatException e) {
            throw new IOException(source + ": malformed crc32c line: " + crcText);
        }
        int actual = crc(body);
        if (expected != actual) {
            throw new IOException(String.format("%s: crc32c %08x recorded, %08x computed", source, expected, actual));
        }
        PoolManifest m = new PoolManifest();
        String[] lines = body.split("\n");
        for (int i = 1; i < lines.length; i++) {
            m.parseLine(source + " line " + (i + 1), lines[i]);
        }
        m.validate(source);
        return m;
    }

    private void parseLine(String where, String line) throws IOException {
        String[] f = line.split(" ", -1);
        try {
            switch (f[0]) {
                case "next-layer" -> {
                    expectFields(where, f, 2);
                    nextLayer = Long.parseLong(f[1]);
                }
                case "layer" -> {
                    expectFields(where, f, 3);
                    String id = StorageIds.requireId("layer id", f[1]);
                    String parent = f[2].equals("-") ? null : StorageIds.requireId("parent layer id", f[2]);
                    putUnique(where, layers, id, new LayerRecord(id, parent));
                }
                case "volume" -> {
                    expectFields(where, f, 4);
                    String id = StorageIds.requireId("volume id", f[1]);
                    putUnique(where, volumes, id, new VolumeRecord(id, StorageIds.requireId("layer id", f[2]),
                            StorageIds.requireSize("size", Long.parseLong(f[3]))));
                }
                case "snapshot" -> {
                    expectFields(where, f, 5);
                    String id = StorageIds.requireId("snapshot id", f[1]);
                    putUnique(where, snapshots, id, new SnapshotRecord(id, StorageIds.requireId("layer id", f[2]),
                            StorageIds.requireSize("size", Long.parseLong(f[3])),
                            StorageIds.requireId("source volume id", f[4])));
                }
                default -> throw new IOException(where + ": unknown record \"" + f[0] + "\"");
            }
        } catch (IllegalArgumentException e) {
            throw new IOException(where + ": " + e.getMessage(), e);
        }
    }

    private static void expectFields(String where, String[] f, int n) throws IOException {
        if (f.length != n) {
            throw new IOException(where + ": " + f[0] + " record needs " + n + " fields, has " + f.length);
        }
    }

    private static <T> void putUnique(String where, Map<String, T> map, String id, T value) throws IOException {
        if (map.putIfAbsent(id, value) != null) {
            throw new IOException(where + ": duplicate id " + id);
        }
    }

    /** Every reference resolves, parent chains end, and layer ids stay below {@code next-layer}. */
    private void validate(String source) throws IOException {
        for (LayerRecord l : layers.values()) {
            if (l.parentId() != null && !layers.containsKey(l.parentId())) {
                throw new IOException(source + ": layer " + l.id() + " has unknown parent " + l.parentId());
            }
            if (layerNumber(l.id()) >= nextLayer) {
                throw new IOException(source + ": layer " + l.id() + " is not below next-layer " + nextLayer);
            }
        }
        Map<String, Boolean> acyclic = new HashMap<>();
        for (LayerRecord l : layers.values()) {
            Set<String> seen = new HashSet<>();
            for (String id = l.id(); id != null && !acyclic.containsKey(id); id = layers.get(id).parentId()) {
                if (!seen.add(id)) {
                    throw new IOException(source + ": layer " + id + " is its own ancestor");
                }
            }
            seen.forEach(id -> acyclic.put(id, true));
        }
        for (VolumeRecord v : volumes.values()) {
            if (!layers.containsKey(v.layerId())) {
                throw new IOException(source + ": volume " + v.id() + " has unknown layer " + v.layerId());
            }
        }
        for (SnapshotRecord s : snapshots.values()) {
            if (!layers.containsKey(s.layerId())) {
                throw new IOException(source + ": snapshot " + s.id() + " has unknown layer " + s.layerId());
            }
        }
        // A volume's head is written in place: nothing else may read through it.
        Set<String> shared = new HashSet<>();
        snapshots.values().forEach(s -> shared.add(s.layerId()));
        layers.values().forEach(l -> shared.add(l.parentId()));
        Set<String> heads = new HashSet<>();
        for (VolumeRecord v : volumes.values()) {
            if (shared.contains(v.layerId()) || !heads.add(v.layerId())) {
                throw new IOException(source + ": head layer " + v.layerId() + " of volume " + v.id()
                        + " is shared");
            }
        }
    }

    private static long layerNumber(String id) throws IOException {
        if (id.length() != 17 || id.charAt(0) != 'L') {
            throw new IOException("malformed layer id " + id);
        }
        try {
            return Long.parseLong(id.substring(1));
        } catch (NumberFormatException e) {
            throw new IOException("malformed layer id " + id);
        }
    }

    private static int crc(String s) {
        CRC32C c = new CRC32C();
        c.update(s.getBytes(StandardCharsets.UTF_8));
        return (int) c.getValue();
    }
}
