package dev.stowage.engine.cluster;

import java.util.Collections;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * What a node tells the cluster about itself, as registered under {@code /stowage/nodes/<id>}: the
 * address of its replica server, its topology labels ({@value #ZONE} and {@value #RACK}, when
 * configured), the capacity and free space of its storage pool, and whether it has no storage at
 * all (a storage-less node attaches volumes but holds no replica), and the address of its management
 * API, which other nodes call to have it hold a volume's writes (empty when it serves none).
 *
 * <p>Immutable and validated on construction: an invalid field fails with
 * {@link IllegalArgumentException} naming it. Labels are copied into a sorted unmodifiable map.
 *
 * @param id            the node id: 1-253 characters of {@code [A-Za-z0-9._-]}, starting with a letter or digit
 * @param address       {@code host:port} of the node's replica server ({@code [v6addr]:port} for IPv6)
 * @param labels        topology labels, e.g. {@code zone=a, rack=r1}; empty when none
 * @param capacityBytes size of the node's storage pool (0 for a storage-less node)
 * @param freeBytes     unallocated bytes of the pool, at most {@code capacityBytes}
 * @param storageless   true when the node holds no replicas
 * @param apiAddress    {@code host:port} of the node's management API, or "" when none is known
 */
public record NodeDescriptor(String id, String address, Map<String, String> labels, long capacityBytes,
                             long freeBytes, boolean storageless, String apiAddress) {
    /** Label naming the node's failure zone. */
    public static final String ZONE = "zone";
    /** Label naming the node's rack within its zone. */
    public static final String RACK = "rack";

    private static final Pattern ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,252}");

    public NodeDescriptor {
        if (id == null || !ID.matcher(id).matches()) {
            throw new IllegalArgumentException("id: must be 1-253 characters of [A-Za-z0-9._-] starting with a"
                    + " letter or digit, was " + (id == null ? "null" : "'" + id + "'"));
        }
        checkAddress("address", address);
        if (apiAddress == null) {
            apiAddress = "";
        } else if (!apiAddress.isEmpty()) {
            checkAddress("apiAddress", apiAddress);
        }
        if (labels == null) {
            throw new IllegalArgumentException("labels: required (empty when none)");
        }
        TreeMap<String, String> sorted = new TreeMap<>();
        for (Map.Entry<String, String> label : labels.entrySet()) {
            if (label.getKey() == null || label.getKey().isEmpty() || label.getValue() == null) {
                throw new IllegalArgumentException("labels: keys must be non-empty and values non-null, was "
                        + label.getKey() + "=" + label.getValue());
            }
            sorted.put(label.getKey(), label.getValue());
        }
        labels = Collections.unmodifiableMap(sorted);
        if (capacityBytes < 0) {
            throw new IllegalArgumentException("capacityBytes: must not be negative, was " + capacityBytes);
        }
        if (freeBytes < 0 || freeBytes > capacityBytes) {
            throw new IllegalArgumentException("freeBytes: must be between 0 and capacityBytes (" + capacityBytes
                    + "), was " + freeBytes);
        }
    }

    /** A storage node with the given labels. */
    public static NodeDescriptor storage(String id, String address, Map<String, String> labels, long capacityBytes,
                                         long freeBytes) {
        return new NodeDescriptor(id, address, labels, capacityBytes, freeBytes, false, "");
    }

    /** A node without storage: it attaches volumes but holds no replica. */
    public static NodeDescriptor storageless(String id, String address, Map<String, String> labels) {
        return new NodeDescriptor(id, address, labels, 0, 0, true, "");
    }

    /** The zone label, or "" when the node has none. */
    public String zone() { return labels.getOrDefault(ZONE, ""); }

    /** The rack label, or "" when the node has none. */
    public String rack() { return labels.getOrDefault(RACK, ""); }

    /** This node with another free capacity (validated as on construction). */
    public NodeDescriptor withFreeBytes(long free) {
        return new NodeDescriptor(id, address, labels, capacityBytes, free, storageless, apiAddress);
    }

    /** This node with its management API at {@code api} ("" for none; validated as on construction). */
    public NodeDescriptor withApiAddress(String api) {
        return new NodeDescriptor(id, address, labels, capacityBytes, freeBytes, storageless, api);
    }

    private static void checkAddress(String field, String address) {
        if (address == null || address.isEmpty()) {
            throw new IllegalArgumentException(field + ": required (host:port of the replica server)");
        }
        int colon = address.lastIndexOf(':');
        String host = colon < 0 ? "" : address.substring(0, colon);
        if (host.startsWith("[") != host.endsWith("]") || host.replace("[", "").replace("]", "").isEmpty()
                || !host.startsWith("[") && host.contains(":")) {
            throw new IllegalArgumentException(field + ": must be host:port or [ipv6]:port, was '" + address + "'");
        }
        int port;
        try {
            port = Integer.parseInt(address.substring(colon + 1));
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException(field + ": port must be 1-65535 in host:port, was '" + address + "'");
        }
    }
}
