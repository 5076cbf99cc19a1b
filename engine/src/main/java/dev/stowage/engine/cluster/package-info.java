/**
 * Cluster metadata and membership. {@link dev.stowage.engine.cluster.MetadataStore} is the contract;
 * only {@code dev.stowage.engine.cluster.etcd} imports jetcd.
 */
package dev.stowage.engine.cluster;
