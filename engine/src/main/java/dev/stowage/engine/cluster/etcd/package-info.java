/**
 * The etcd-backed {@link dev.stowage.engine.cluster.MetadataStore} for clusters; the only package
 * that imports jetcd. jetcd types and errors are translated here and never leave it.
 */
package dev.stowage.engine.cluster.etcd;
