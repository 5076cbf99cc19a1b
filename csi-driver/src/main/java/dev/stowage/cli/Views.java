package dev.stowage.cli;

import dev.stowage.engine.api.ClusterNode;
import dev.stowage.engine.api.NodeInfo;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * How stowctl shows volumes, snapshots and nodes: as table rows and key/value blocks for people, as JSON
 * objects for programs. JSON sizes are bytes (numbers); tables show binary units. Stateless.
 */
final class Views {
    private Views() {}

    // ---- volumes ----

    static Table volumeTable(List<Volume> volumes) {
        Table t = new Table("ID", "NAME", "SIZE", "REPL", "FS", "REPLICAS", "ATTACHED", "CONDITION");
        for (Volume v : volumes) {
            t.row(v.id(), v.name(), Sizes.format(v.sizeBytes()), Integer.toString(v.replicaCount()), v.fsType(),
                    replicaSummary(v), attachment(v), v.condition().abnormal() ? "abnormal" : "healthy");
        }
        return t;
    }

    static Table volumeDetails(Volume v) {
        Table t = new Table("FIELD", "VALUE")
                .row("id", v.id())
                .row("name", v.name())
                .row("size", Sizes.format(v.sizeBytes()) + " (" + v.sizeBytes() + " bytes)")
                .row("replicas wanted", Integer.toString(v.replicaCount()))
                .row("fs type", v.fsType())
                .row("source", source(v.contentSource()))
                .row("epoch", Long.toString(v.epoch()))
                .row("attached", attachment(v))
                .row("condition", (v.condition().abnormal() ? "abnormal: " : "") + v.condition().message());
        for (Volume.Replica r : v.replicas()) {
            t.row("replica", r.nodeId() + " " + r.state()
                    + (r.state() == Volume.ReplicaState.REBUILDING ? " " + r.progressPercent() + "%" : ""));
        }
        for (Map.Entry<String, String> p : new TreeMap<>(v.parameters()).entrySet()) {
            t.row("parameter", p.getKey() + "=" + p.getValue());
        }
        return t;
    }

    static void volumeJson(JsonWriter w, Volume v) {
        w.beginObject()
                .name("id").value(v.id())
                .name("name").value(v.name())
                .name("sizeBytes").value(v.sizeBytes())
                .name("replicaCount").value(v.replicaCount())
                .name("fsType").value(v.fsType())
                .name("parameters").value(new TreeMap<>(v.parameters()))
                .name("contentSource");
        w.beginObject();
        if (v.contentSource() instanceof VolumeSpec.ContentSource.FromSnapshot s) {
            w.name("snapshotId").value(s.snapshotId());
        } else if (v.contentSource() instanceof VolumeSpec.ContentSource.FromVolume s) {
            w.name("volumeId").value(s.volumeId());
        }
        w.endObject();
        w.name("replicas").beginArray();
        for (Volume.Replica r : v.replicas()) {
            w.beginObject().name("nodeId").value(r.nodeId()).name("state").value(r.state().name())
                    .name("progressPercent").value(r.progressPercent()).endObject();
        }
        w.endArray();
        w.name("epoch").value(v.epoch());
        w.name("attachment");
        if (v.attachment().isPresent()) {
            Volume.Attachment a = v.attachment().get();
            w.beginObject().name("nodeId").value(a.nodeId()).name("readOnly").value(a.readOnly())
                    .name("devicePath").value(a.devicePath().orElse(null)).endObject();
        } else {
            w.nullValue();
        }
        w.name("condition").beginObject().name("abnormal").value(v.condition().abnormal())
                .name("message").value(v.condition().message()).endObject();
        w.endObject();
    }

    private static String replicaSummary(Volume v) {
        long healthy = v.replicas().stream().filter(r -> r.state() == Volume.ReplicaState.HEALTHY).count();
        return healthy + "/" + v.replicas().size() + " healthy";
    }

    private static String attachment(Volume v) {
        if (v.attachment().isEmpty()) {
            return "-";
        }
        Volume.Attachment a = v.attachment().get();
        String where = a.devicePath().map(d -> a.nodeId() + ":" + d).orElse(a.nodeId() + " (published)");
        return a.readOnly() ? where + " ro" : where;
    }

    private static String source(VolumeSpec.ContentSource source) {
        if (source instanceof VolumeSpec.ContentSource.FromSnapshot s) {
            return "snapshot " + s.snapshotId();
        }
        if (source instanceof VolumeSpec.ContentSource.FromVolume s) {
            return "volume " + s.volumeId();
        }
        return "empty";
    }

    // ---- snapshots ----

    static Table snapshotTable(List<Snapshot> snapshots) {
        Table t = new Table("ID", "NAME", "VOLUME", "SIZE", "CREATED", "READY");
        for (Snapshot s : snapshots) {
            t.row(s.id(), s.name(), s.sourceVolumeId(), Sizes.format(s.sizeBytes()),
                    Instant.ofEpochMilli(s.createdAtMillis()).toString(), Boolean.toString(s.readyToUse()));
        }
        return t;
    }

    static void snapshotJson(JsonWriter w, Snapshot s) {
        w.beginObject()
                .name("id").value(s.id())
                .name("name").value(s.name())
                .name("sourceVolumeId").value(s.sourceVolumeId())
                .name("sizeBytes").value(s.sizeBytes())
                .name("createdAtMillis").value(s.createdAtMillis())
                .name("readyToUse").value(s.readyToUse())
                .endObject();
    }

    // ---- nodes ----

    /** The cluster's members: one row each, storage-less nodes without capacity, departed ones "away". */
    static Table nodeTable(List<ClusterNode> nodes) {
        Table t = new Table("NODE", "ADDRESS", "ROLE", "STATE", "CAPACITY", "FREE", "LABELS");
        for (ClusterNode n : nodes) {
            t.row(n.id(), n.address(), n.storageless() ? "storage-less" : "storage", n.alive() ? "alive" : "away",
                    n.storageless() ? "-" : Sizes.format(n.capacityBytes()),
                    n.storageless() ? "-" : Sizes.format(n.freeBytes()), labels(n.labels()));
        }
        return t;
    }

    static void nodeJson(JsonWriter w, ClusterNode n) {
        w.beginObject()
                .name("nodeId").value(n.id())
                .name("address").value(n.address().isEmpty() ? null : n.address())
                .name("labels").value(new TreeMap<>(n.labels()))
                .name("capacityBytes").value(n.capacityBytes())
                .name("freeBytes").value(n.freeBytes())
                .name("storageless").value(n.storageless())
                .name("alive").value(n.alive())
                .endObject();
    }

    /** The node serving the API, as {@code NodeInfo} describes it. */
    static void servingNodeJson(JsonWriter w, NodeInfo n) {
        w.beginObject().name("nodeId").value(n.nodeId()).name("labels").value(new TreeMap<>(n.labels()))
                .name("maxVolumes").value(n.maxVolumes()).endObject();
    }

    static String labels(Map<String, String> labels) {
        StringBuilder sb = new StringBuilder();
        new TreeMap<>(labels).forEach((k, val) -> sb.append(sb.length() == 0 ? "" : ",").append(k).append('=')
                .append(val));
        return sb.toString();
    }
}
