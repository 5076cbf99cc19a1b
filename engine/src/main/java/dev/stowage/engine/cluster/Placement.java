package dev.stowage.engine.cluster;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * Chooses the nodes that hold a volume's replicas. A pure function of its arguments: no I/O, no
 * clock, no randomness; the same input always gives the same answer. Stateless and thread-safe.
 *
 * <p>Rules, in order:
 * <ol>
 *   <li>Only eligible nodes: not storage-less, not in {@code excludeNodes}, in {@code allowedZones}
 *       when that set is non-empty (a node without a zone label is then refused), and with enough
 *       free space. Volumes are thin, so a node qualifies when
 *       {@code freeBytes * overprovisionRatio >= sizeBytes} (see {@link #requiredFreeBytes}).</li>
 *   <li>Distinct nodes.</li>
 *   <li>As many distinct zones as possible; then, within that spread, as many distinct racks (a rack
 *       is identified by zone and rack label); then the most free bytes; ties by node id.
 *       Nodes without a zone (rack) label count as one shared zone (rack).</li>
 * </ol>
 * Choosing greedily by (new zone, new rack, free bytes, id) reaches the maximum for both spreads:
 * every zone-spreading pick is also a new rack, and after the zones run out each pick takes a new
 * rack while one remains.
 *
 * <p>Errors: {@link PlacementException} ({@code RESOURCE_EXHAUSTED}) when too few nodes are eligible;
 * {@link IllegalArgumentException} for malformed arguments (naming the argument).
 */
public final class Placement {
    /** A thick check: each replica node needs the whole volume size free. */
    public static final double NO_OVERPROVISIONING = 1.0;
    private static final int MAX_LISTED = 20;

    private Placement() {}

    /** {@link #choose(int, List, long, Set, Set, double)} without overprovisioning. */
    public static List<String> choose(int replicas, List<NodeDescriptor> candidates, long sizeBytes,
                                      Set<String> excludeNodes, Set<String> allowedZones) {
        return choose(replicas, candidates, sizeBytes, excludeNodes, allowedZones, NO_OVERPROVISIONING);
    }

    /**
     * The ids of {@code replicas} distinct nodes for a new volume of {@code sizeBytes}, best first.
     *
     * @param candidates         the live nodes (e.g. {@link Membership#liveNodes()}); ids must be unique
     * @param excludeNodes       ids never to choose (empty for none)
     * @param allowedZones       zones the replicas may live in (empty: any zone)
     * @param overprovisionRatio at least 1: how many times its free space a node may promise to thin volumes
     * @throws PlacementException when fewer than {@code replicas} nodes are eligible
     */
    public static List<String> choose(int replicas, List<NodeDescriptor> candidates, long sizeBytes,
                                      Set<String> excludeNodes, Set<String> allowedZones, double overprovisionRatio) {
        if (replicas < 1) {
            throw new IllegalArgumentException("replicas: must be at least 1, was " + replicas);
        }
        Selection selection = select(replicas, List.of(), candidates, sizeBytes, excludeNodes, allowedZones,
                overprovisionRatio);
        if (selection.chosen.size() < replicas) {
            throw selection.failure("repl=" + replicas + " needs " + replicas + " storage "
                    + plural(replicas, "node") + " with " + formatBytes(selection.required) + " free"
                    + zonesClause(allowedZones), replicas);
        }
        return selection.chosen;
    }

    /**
     * The ids of {@code count} new nodes for a volume that keeps replicas on {@code keptReplicas}
     * (re-replication after a replica's node was lost): distinct from the kept nodes, and spreading
     * over zones and racks that the kept replicas do not cover yet, then by free space and id.
     * Kept nodes are never chosen; put the lost node in {@code excludeNodes} if it is still a candidate.
     *
     * @param keptReplicas the nodes of the replicas that stay (their zone and rack count as used)
     * @throws PlacementException when fewer than {@code count} nodes are eligible
     */
    public static List<String> chooseReplacement(int count, Collection<NodeDescriptor> keptReplicas,
                                                 List<NodeDescriptor> candidates, long sizeBytes,
                                                 Set<String> excludeNodes, Set<String> allowedZones,
                                                 double overprovisionRatio) {
        if (count < 1) {
            throw new IllegalArgumentException("count: must be at least 1, was " + count);
        }
        if (keptReplicas == null) {
            throw new IllegalArgumentException("keptReplicas: required (empty when none is kept)");
        }
        Selection selection = select(count, List.copyOf(keptReplicas), candidates, sizeBytes, excludeNodes,
                allowedZones, overprovisionRatio);
        if (selection.chosen.size() < count) {
            String kept = keptReplicas.stream().map(NodeDescriptor::id).sorted().collect(Collectors.joining(", "));
            throw selection.failure("re-replication needs " + count + " more storage " + plural(count, "node")
                    + " with " + formatBytes(selection.required) + " free" + zonesClause(allowedZones)
                    + (kept.isEmpty() ? "" : " besides " + kept), count);
        }
        return selection.chosen;
    }

    /** The free bytes a node needs to take a replica of {@code sizeBytes}: {@code ceil(size / ratio)}. */
    public static long requiredFreeBytes(long sizeBytes, double overprovisionRatio) {
        if (sizeBytes < 0) {
            throw new IllegalArgumentException("sizeBytes: must not be negative, was " + sizeBytes);
        }
        if (!(overprovisionRatio >= 1.0) || Double.isInfinite(overprovisionRatio)) {
            throw new IllegalArgumentException("overprovisionRatio: must be a finite number >= 1, was "
                    + overprovisionRatio);
        }
        if (overprovisionRatio == 1.0) {
            return sizeBytes;
        }
        return (long) Math.ceil(sizeBytes / overprovisionRatio);
    }

    // ---- the selection

    private static Selection select(int count, List<NodeDescriptor> kept, List<NodeDescriptor> candidates,
                                    long sizeBytes, Set<String> excludeNodes, Set<String> allowedZones,
                                    double overprovisionRatio) {
        if (candidates == null) {
            throw new IllegalArgumentException("candidates: required");
        }
        if (excludeNodes == null) {
            throw new IllegalArgumentException("excludeNodes: required (empty for none)");
        }
        if (allowedZones == null) {
            throw new IllegalArgumentException("allowedZones: required (empty for any zone)");
        }
        long required = requiredFreeBytes(sizeBytes, overprovisionRatio);
        Set<String> keptIds = kept.stream().map(NodeDescriptor::id).collect(Collectors.toSet());
        Map<String, NodeDescriptor> byId = new TreeMap<>();
        Map<String, String> refused = new TreeMap<>();
        for (NodeDescriptor node : candidates) {
            if (byId.put(node.id(), node) != null) {
                throw new IllegalArgumentException("candidates: node " + node.id() + " is listed twice");
            }
        }
        List<NodeDescriptor> eligible = new ArrayList<>();
        for (NodeDescriptor node : byId.values()) {
            String reason = refusal(node, keptIds, excludeNodes, allowedZones, required);
            if (reason == null) {
                eligible.add(node);
            } else {
                refused.put(node.id(), reason);
            }
        }
        Set<String> zones = new HashSet<>();
        Set<List<String>> racks = new HashSet<>();
        for (NodeDescriptor node : kept) {
            zones.add(node.zone());
            racks.add(List.of(node.zone(), node.rack()));
        }
        List<String> chosen = new ArrayList<>();
        while (chosen.size() < count && !eligible.isEmpty()) {
            NodeDescriptor best = null;
            for (NodeDescriptor node : eligible) {
                if (best == null || better(node, best, zones, racks)) {
                    best = node;
                }
            }
            eligible.remove(best);
            chosen.add(best.id());
            zones.add(best.zone());
            racks.add(List.of(best.zone(), best.rack()));
        }
        return new Selection(chosen, byId, refused, required);
    }

    /** Why {@code node} cannot take a replica, or null when it can. */
    private static String refusal(NodeDescriptor node, Set<String> keptIds, Set<String> excludeNodes,
                                  Set<String> allowedZones, long required) {
        if (node.storageless()) {
            return "storage-less";
        }
        if (keptIds.contains(node.id())) {
            return "holds a replica";
        }
        if (excludeNodes.contains(node.id())) {
            return "excluded";
        }
        if (!allowedZones.isEmpty() && !allowedZones.contains(node.zone())) {
            return node.zone().isEmpty() ? "no zone" : "zone " + node.zone();
        }
        if (node.freeBytes() < required) {
            return formatBytes(node.freeBytes()) + " free";
        }
        return null;
    }

    /** Whether {@code a} beats {@code b} given the zones and racks already used. */
    private static boolean better(NodeDescriptor a, NodeDescriptor b, Set<String> zones, Set<List<String>> racks) {
        boolean aNewZone = !zones.contains(a.zone());
        boolean bNewZone = !zones.contains(b.zone());
        if (aNewZone != bNewZone) {
            return aNewZone;
        }
        boolean aNewRack = !racks.contains(List.of(a.zone(), a.rack()));
        boolean bNewRack = !racks.contains(List.of(b.zone(), b.rack()));
        if (aNewRack != bNewRack) {
            return aNewRack;
        }
        if (a.freeBytes() != b.freeBytes()) {
            return a.freeBytes() > b.freeBytes();
        }
        return a.id().compareTo(b.id()) < 0;
    }

    private record Selection(List<String> chosen, Map<String, NodeDescriptor> byId, Map<String, String> refused,
                             long required) {
        PlacementException failure(String need, int needed) {
            List<String> found = chosen.stream().sorted().toList();
            StringBuilder message = new StringBuilder(need).append("; found ").append(found.size());
            if (!found.isEmpty()) {
                message.append(": ").append(describe(found.stream().map(id -> id + " (" + where(byId.get(id)) + ")")
                        .toList()));
            }
            if (!refused.isEmpty()) {
                message.append("; not eligible: ").append(describe(refused.entrySet().stream()
                        .map(e -> e.getKey() + " (" + e.getValue() + ")").toList()));
            }
            return new PlacementException(message.toString(), needed, found, refused);
        }
    }

    private static String where(NodeDescriptor node) {
        String zone = node.zone().isEmpty() ? "no zone" : "zone " + node.zone();
        return node.rack().isEmpty() ? zone : zone + ", rack " + node.rack();
    }

    private static String describe(List<String> items) {
        if (items.size() <= MAX_LISTED) {
            return String.join(", ", items);
        }
        return String.join(", ", items.subList(0, MAX_LISTED)) + " and " + (items.size() - MAX_LISTED) + " more";
    }

    private static String zonesClause(Set<String> allowedZones) {
        return allowedZones.isEmpty() ? "" : " in zones [" + String.join(",", new TreeSet<>(allowedZones)) + "]";
    }

    private static String plural(int n, String word) {
        return n == 1 ? word : word + "s";
    }

    /** Bytes for people: "10 GiB", "1.5 GiB", "512 MiB", "100 B". */
    static String formatBytes(long bytes) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        int unit = 0;
        double value = bytes;
        while (value >= 1024 && unit < units.length - 1) {
            value /= 1024;
            unit++;
        }
        if (unit == 0 || value == Math.rint(value)) {
            return (long) value + " " + units[unit];
        }
        return String.format(Locale.ROOT, "%.1f %s", value, units[unit]);
    }
}
