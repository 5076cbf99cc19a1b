/**
 * The data path beneath the frontends: the per-volume coordinator (single writer, fencing epoch) and,
 * with replication, the replica clients and servers, resync and rebuild.
 */
package dev.stowage.engine.replication;
