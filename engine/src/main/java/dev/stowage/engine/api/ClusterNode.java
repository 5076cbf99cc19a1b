package dev.stowage.engine.api;

import java.util.Map;

/**
 * A member of the cluster as the serving node sees it: for stowctl's {@code node list} and
 * {@code cluster status}. Immutable; labels are copied.
 *
 * @param id            the node id
 * @param address       {@code host:port} of the node's replica server; "" when it has none (a single host
 *                      without a cluster)
 * @param labels        topology labels (zone, rack), empty when none
 * @param capacityBytes size of the node's storage pool (0 for a storage-less node)
 * @param freeBytes     unallocated bytes of the pool, as the node last published them
 * @param storageless   true when the node holds no replicas
 * @param alive         true while the node's membership lease lives; false for a node this view saw
 *                      leave and that has not come back
 */
public record ClusterNode(String id, String address, Map<String, String> labels, long capacityBytes,
                          long freeBytes, boolean storageless, boolean alive) {
    public ClusterNode {
        labels = Map.copyOf(labels);
        address = address == null ? "" : address;
    }
}
