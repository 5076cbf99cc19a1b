package dev.stowage.engine.volume;

import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.replication.IoLimits;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The parameters a volume accepts, validated in one place. Unknown keys are refused with
 * INVALID_ARGUMENT naming {@code parameters.<key>} (or {@code mutable_parameters.<key>}), so a typo
 * in a StorageClass fails loudly instead of silently giving a volume the user did not ask for.
 *
 * <p>{@code repl} and {@code fsType} are fixed at creation. The I/O limits {@code maxIops} and
 * {@code maxBytesPerSecond} may be given at creation (as parameters or mutable parameters) and
 * changed later with ControllerModifyVolume.
 */
public final class VolumeParameters {
    public static final String REPL = "repl";
    public static final String FS_TYPE = "fsType";
    public static final String ZONES = "zones";
    public static final String MAX_IOPS = "maxIops";
    public static final String MAX_BYTES_PER_SECOND = "maxBytesPerSecond";
    public static final int MAX_REPLICAS = 3;
    public static final Set<String> MUTABLE = Set.of(MAX_IOPS, MAX_BYTES_PER_SECOND);

    /** Keys and what they mean. */
    public static final Map<String, String> SUPPORTED;

    static {
        Map<String, String> m = new LinkedHashMap<>();
        m.put(REPL, "number of replicas on distinct nodes, 1 to " + MAX_REPLICAS + " (default 1)");
        m.put(FS_TYPE, "file system created on first stage of a mount volume: ext4 or xfs (default ext4)");
        m.put(ZONES, "comma-separated zones the replicas may be placed in (default: any)");
        m.put(MAX_IOPS, "mutable: most read/write operations per second, 0 for no limit (default 0)");
        m.put(MAX_BYTES_PER_SECOND, "mutable: most bytes read and written per second, 0 for no limit (default 0)");
        SUPPORTED = Map.copyOf(m);
    }

    private final int replicaCount;
    private final String fsType;
    private final IoLimits limits;
    private final Set<String> zones;

    private VolumeParameters(int replicaCount, String fsType, IoLimits limits, Set<String> zones) {
        this.replicaCount = replicaCount;
        this.fsType = fsType;
        this.limits = limits;
        this.zones = Set.copyOf(zones);
    }

    /** Validates creation-time parameters; the error names the offending key. */
    public static VolumeParameters parse(Map<String, String> parameters, Map<String, String> mutableParameters) {
        int repl = 1;
        String fs = "ext4";
        Set<String> zones = Set.of();
        for (Map.Entry<String, String> e : parameters.entrySet()) {
            String key = e.getKey();
            String value = e.getValue() == null ? "" : e.getValue().trim();
            switch (key) {
                case REPL -> repl = parseReplicas(value);
                case FS_TYPE -> fs = parseFsType("parameters." + FS_TYPE, value);
                case ZONES -> zones = parseZones(value);
                case MAX_IOPS, MAX_BYTES_PER_SECOND -> { }
                default -> throw StowageException.invalid("parameters." + key,
                        "unknown parameter; supported: " + String.join(", ", SUPPORTED.keySet()));
            }
        }
        IoLimits limits = applyLimits(IoLimits.UNLIMITED, "parameters.", parameters);
        limits = applyLimits(limits, "mutable_parameters.", mutableParameters);
        return new VolumeParameters(repl, fs, limits, zones);
    }

    private static Set<String> parseZones(String value) {
        java.util.TreeSet<String> zones = new java.util.TreeSet<>();
        for (String z : value.split(",")) {
            String t = z.trim();
            if (!t.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,62}")) {
                throw StowageException.invalid("parameters." + ZONES, "'" + t + "' is not a zone name");
            }
            zones.add(t);
        }
        return zones;
    }

    /** Reads parameters as stored with a volume (already validated once). */
    public static VolumeParameters stored(Map<String, String> stored) {
        return parse(stored, Map.of());
    }

    /** These parameters with {@code changes} to the mutable ones applied. */
    public VolumeParameters modify(Map<String, String> changes) {
        return new VolumeParameters(replicaCount, fsType, applyLimits(limits, "mutable_parameters.", changes), zones);
    }

    private static IoLimits applyLimits(IoLimits base, String fieldPrefix, Map<String, String> values) {
        long iops = base.maxIops();
        long bps = base.maxBytesPerSecond();
        for (Map.Entry<String, String> e : values.entrySet()) {
            String key = e.getKey();
            String value = e.getValue() == null ? "" : e.getValue().trim();
            switch (key) {
                case MAX_IOPS -> iops = parseNonNegative(fieldPrefix + key, value);
                case MAX_BYTES_PER_SECOND -> bps = parseNonNegative(fieldPrefix + key, value);
                default -> {
                    if (fieldPrefix.startsWith("mutable")) {
                        throw StowageException.invalid(fieldPrefix + key,
                                "is not a mutable parameter; mutable: " + String.join(", ", MUTABLE));
                    }
                }
            }
        }
        return new IoLimits(iops, bps);
    }

    private static long parseNonNegative(String field, String value) {
        try {
            long n = Long.parseLong(value);
            if (n < 0) {
                throw StowageException.invalid(field, n + " is negative");
            }
            return n;
        } catch (NumberFormatException e) {
            throw StowageException.invalid(field, "'" + value + "' is not a whole number");
        }
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

    public IoLimits limits() { return limits; }

    /** Zones replicas may be placed in; empty for any. */
    public Set<String> zones() { return zones; }

    /** The normalised parameters as they are stored with the volume. */
    public Map<String, String> asMap() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put(REPL, Integer.toString(replicaCount));
        m.put(FS_TYPE, fsType);
        if (!zones.isEmpty()) {
            m.put(ZONES, String.join(",", zones));
        }
        if (limits.maxIops() > 0) {
            m.put(MAX_IOPS, Long.toString(limits.maxIops()));
        }
        if (limits.maxBytesPerSecond() > 0) {
            m.put(MAX_BYTES_PER_SECOND, Long.toString(limits.maxBytesPerSecond()));
        }
        return Map.copyOf(m);
    }
}
