package dev.stowage.engine.volume;

import dev.stowage.engine.api.StowageException;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The StorageClass parameters a volume accepts, validated in one place. Unknown keys are refused
 * with INVALID_ARGUMENT naming {@code parameters.<key>}, so a typo in a StorageClass fails loudly
 * instead of silently giving a volume the user did not ask for.
 */
public final class VolumeParameters {
    public static final String REPL = "repl";
    public static final String FS_TYPE = "fsType";
    public static final int MAX_REPLICAS = 3;

    /** Keys and what they mean; the order is the order help texts show. */
    public static final Map<String, String> SUPPORTED;

    static {
        Map<String, String> m = new LinkedHashMap<>();
        m.put(REPL, "number of replicas on distinct nodes, 1 to " + MAX_REPLICAS + " (default 1)");
        m.put(FS_TYPE, "file system created on first stage of a mount volume: ext4 or xfs (default ext4)");
        SUPPORTED = Map.copyOf(m);
    }

    private final int replicaCount;
    private final String fsType;

    private VolumeParameters(int replicaCount, String fsType) {
        this.replicaCount = replicaCount;
        this.fsType = fsType;
    }

    /** Validates {@code raw}; the error names the offending key. */
    public static VolumeParameters parse(Map<String, String> raw) {
        int repl = 1;
        String fs = "ext4";
        for (Map.Entry<String, String> e : raw.entrySet()) {
            String key = e.getKey();
            String value = e.getValue() == null ? "" : e.getValue().trim();
            switch (key) {
                case REPL -> repl = parseReplicas(value);
                case FS_TYPE -> fs = parseFsType("parameters." + FS_TYPE, value);
                default -> throw StowageException.invalid("parameters." + key,
                        "unknown parameter; supported: " + String.join(", ", SUPPORTED.keySet()));
            }
        }
        return new VolumeParameters(repl, fs);
    }

    private static int parseReplicas(String value) {
        int n;
        try {
            n = Integer.parseInt(value);
        } catch (NumberFormatException e) {
            throw StowageException.invalid("parameters." + REPL, "'" + value + "' is not a whole number");
        }
        if (n < 1 || n > MAX_REPLICAS) {
            throw StowageException.invalid("parameters." + REPL, n + " is outside 1.." + MAX_REPLICAS);
        }
        return n;
    }

    /** Accepts ext4 and xfs (any case); {@code field} names the caller's field in errors. */
    public static String parseFsType(String field, String value) {
        String v = value.toLowerCase(Locale.ROOT);
        if (!v.equals("ext4") && !v.equals("xfs")) {
            throw StowageException.invalid(field, "'" + value + "' is not supported; use ext4 or xfs");
        }
        return v;
    }

    public int replicaCount() { return replicaCount; }

    public String fsType() { return fsType; }

    /** The normalised parameters as they are stored with the volume. */
    public Map<String, String> asMap() {
        return Map.of(REPL, Integer.toString(replicaCount), FS_TYPE, fsType);
    }
}
