package dev.stowage.cli;

import dev.stowage.engine.api.Capacity;
import dev.stowage.engine.api.ClusterNode;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.Page;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.api.grpc.RemoteVolumeService;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * The stowctl commands over one node's management API. Commands that take a volume or snapshot accept
 * its id or its name. Results go to {@code out} as a table or as one JSON document; failures are thrown
 * ({@link UsageException} for the command line, {@link StowageException} from the API) for
 * {@link StowctlMain} to report. Not thread-safe: one instance per invocation.
 */
final class Commands {
    private static final int PAGE = 500;
    private final RemoteVolumeService api;
    private final boolean json;
    private final PrintStream out;

    Commands(RemoteVolumeService api, boolean json, PrintStream out) {
        this.api = api;
        this.json = json;
        this.out = out;
    }

    void run(Args args) {
        List<String> w = args.words();
        String group = w.get(0);
        String verb = w.size() > 1 ? w.get(1) : "";
        switch (group + " " + verb) {
            case "cluster status" -> clusterStatus(args);
            case "node list" -> nodeList(args);
            case "volume create" -> volumeCreate(args);
            case "volume list" -> volumeList(args);
            case "volume inspect" -> volumeInspect(args);
            case "volume attach" -> volumeAttach(args);
            case "volume detach" -> volumeDetach(args);
            case "volume resize" -> volumeResize(args);
            case "volume delete" -> volumeDelete(args);
            case "snapshot create" -> snapshotCreate(args);
            case "snapshot list" -> snapshotList(args);
            case "snapshot delete" -> snapshotDelete(args);
            default -> throw new UsageException("unknown command '" + String.join(" ", w)
                    + "'; run 'stowctl help' for the list");
        }
    }

    // ---- cluster and nodes ----

    /** Readiness, the serving node, the members (alive/away, capacity) and object counts, then the nodes. */
    private void clusterStatus(Args args) {
        args.allowOnly("cluster status");
        args.operands(2);
        RemoteVolumeService.ClusterStatus s = api.clusterStatus();
        Capacity capacity = api.capacity(Map.of());
        List<ClusterNode> members = s.members();
        long alive = members.stream().filter(ClusterNode::alive).count();
        long storage = members.stream().filter(n -> n.alive() && !n.storageless()).count();
        long capacityBytes = members.stream().filter(n -> n.alive() && !n.storageless())
                .mapToLong(ClusterNode::capacityBytes).sum();
        long freeBytes = members.stream().filter(n -> n.alive() && !n.storageless())
                .mapToLong(ClusterNode::freeBytes).sum();
        if (json) {
            JsonWriter w = new JsonWriter().beginObject()
                    .name("endpoint").value(api.endpoint())
                    .name("ready").value(s.ready())
                    .name("servingNode");
            s.nodes().stream().findFirst().ifPresentOrElse(n -> Views.servingNodeJson(w, n), w::nullValue);
            w.name("nodes").beginArray();
            members.forEach(n -> Views.nodeJson(w, n));
            w.endArray()
                    .name("aliveNodes").value(alive)
                    .name("storageNodes").value(storage)
                    .name("capacityBytes").value(capacityBytes)
                    .name("freeBytes").value(freeBytes)
                    .name("volumeCount").value(s.volumeCount())
                    .name("snapshotCount").value(s.snapshotCount())
                    .name("availableBytes").value(capacity.availableBytes())
                    .name("maximumVolumeBytes").value(capacity.maximumVolumeBytes())
                    .endObject();
            print(w);
            return;
        }
        out.print(new Table("FIELD", "VALUE")
                .row("endpoint", api.endpoint())
                .row("serving node", s.nodes().isEmpty() ? "-" : s.nodes().get(0).nodeId())
                .row("ready", Boolean.toString(s.ready()))
                .row("nodes", members.size() + " (" + alive + " alive, " + storage + " alive with storage)")
                .row("raw capacity", Sizes.format(capacityBytes) + " (" + Sizes.format(freeBytes) + " free)")
                .row("volumes", Long.toString(s.volumeCount()))
                .row("snapshots", Long.toString(s.snapshotCount()))
                .row("available", Sizes.format(capacity.availableBytes()))
                .row("largest volume", Sizes.format(capacity.maximumVolumeBytes()))
                .render());
        if (!members.isEmpty()) {
            out.println();
            out.print(Views.nodeTable(members).render());
        }
    }

    private void nodeList(Args args) {
        args.allowOnly("node list");
        args.operands(2);
        List<ClusterNode> nodes = api.clusterNodes();
        if (json) {
            JsonWriter w = new JsonWriter().beginArray();
            nodes.forEach(n -> Views.nodeJson(w, n));
            print(w.endArray());
        } else {
            out.print(Views.nodeTable(nodes).render());
        }
    }

    // ---- volumes ----

    private void volumeCreate(Args args) {
        args.allowOnly("volume create", "size", "repl", "fs");
        String name = args.operands(2, "NAME").get(0);
        long size = Sizes.parse("--size", args.required("size"));
        Map<String, String> parameters = new LinkedHashMap<>();
        String repl = args.required("repl");
        if (!repl.matches("[0-9]{1,2}")) {
            throw new UsageException("--repl '" + repl + "' is not a replica count (1-3)");
        }
        parameters.put("repl", repl);
        if (args.has("fs")) {
            String fs = args.required("fs");
            if (!fs.equals("ext4") && !fs.equals("xfs")) {
                throw new UsageException("--fs '" + fs + "' must be ext4 or xfs");
            }
            parameters.put("fsType", fs);
        }
        Volume v = api.createVolume(new VolumeSpec(name, size, 0, parameters, new VolumeSpec.ContentSource.Empty()));
        showVolume(v);
    }

    private void volumeList(Args args) {
        args.allowOnly("volume list");
        args.operands(2);
        List<Volume> volumes = allVolumes();
        if (json) {
            JsonWriter w = new JsonWriter().beginArray();
            volumes.forEach(v -> Views.volumeJson(w, v));
            print(w.endArray());
        } else {
            out.print(Views.volumeTable(volumes).render());
        }
    }

    private void volumeInspect(Args args) {
        args.allowOnly("volume inspect");
        showVolume(resolveVolume(args.operands(2, "NAME|ID").get(0)));
    }

    /** Publishes the volume to the node and, when that node is the endpoint's own, attaches it there too. */
    private void volumeAttach(Args args) {
        args.allowOnly("volume attach", "node", "read-only", "force");
        Volume v = resolveVolume(args.operands(2, "NAME|ID").get(0));
        String node = args.required("node");
        boolean readOnly = args.has("read-only");
        api.publish(v.id(), node, readOnly, args.has("force"));
        Optional<Path> device = Optional.empty();
        if (node.equals(api.localNode().nodeId())) {
            device = Optional.of(api.attachDevice(v.id()));
        }
        if (json) {
            print(new JsonWriter().beginObject()
                    .name("volumeId").value(v.id())
                    .name("nodeId").value(node)
                    .name("readOnly").value(readOnly)
                    .name("devicePath").value(device.map(Path::toString).orElse(null))
                    .endObject());
        } else if (device.isPresent()) {
            out.println(device.get());
        } else {
            out.println("published " + v.name() + " (" + v.id() + ") on node " + node
                    + "; run 'stowctl --endpoint <that node's API> volume attach' there for its device");
        }
    }

    /** Detaches the device when it is on the endpoint's node, then unpublishes the volume wherever it is. */
    private void volumeDetach(Args args) {
        args.allowOnly("volume detach");
        Volume v = resolveVolume(args.operands(2, "NAME|ID").get(0));
        if (v.attachment().isPresent()) {
            Volume.Attachment a = v.attachment().get();
            if (a.nodeId().equals(api.localNode().nodeId())) {
                api.detachDevice(v.id());
            }
            api.unpublish(v.id(), a.nodeId());
        }
        done("detached", v.id(), v.name());
    }

    private void volumeResize(Args args) {
        args.allowOnly("volume resize", "size");
        Volume v = resolveVolume(args.operands(2, "NAME|ID").get(0));
        long size = Sizes.parse("--size", args.required("size"));
        long now = api.expandVolume(v.id(), size, 0);
        if (json) {
            print(new JsonWriter().beginObject().name("id").value(v.id()).name("name").value(v.name())
                    .name("sizeBytes").value(now).endObject());
        } else {
            out.println("resized " + v.name() + " (" + v.id() + ") to " + Sizes.format(now));
        }
    }

    private void volumeDelete(Args args) {
        args.allowOnly("volume delete");
        Volume v = resolveVolume(args.operands(2, "NAME|ID").get(0));
        api.deleteVolume(v.id());
        done("deleted", v.id(), v.name());
    }

    // ---- snapshots ----

    private void snapshotCreate(Args args) {
        args.allowOnly("snapshot create", "volume");
        String name = args.operands(2, "NAME").get(0);
        Volume v = resolveVolume(args.required("volume"));
        Snapshot s = api.createSnapshot(name, v.id());
        if (json) {
            JsonWriter w = new JsonWriter();
            Views.snapshotJson(w, s);
            print(w);
        } else {
            out.print(Views.snapshotTable(List.of(s)).render());
        }
    }

    private void snapshotList(Args args) {
        args.allowOnly("snapshot list", "volume");
        args.operands(2);
        String source = args.has("volume") ? resolveVolume(args.required("volume")).id() : null;
        List<Snapshot> snapshots = new ArrayList<>();
        pages(token -> api.listSnapshots(source, null, PAGE, token), snapshots::addAll);
        if (json) {
            JsonWriter w = new JsonWriter().beginArray();
            snapshots.forEach(s -> Views.snapshotJson(w, s));
            print(w.endArray());
        } else {
            out.print(Views.snapshotTable(snapshots).render());
        }
    }

    private void snapshotDelete(Args args) {
        args.allowOnly("snapshot delete");
        String ref = args.operands(2, "NAME|ID").get(0);
        Snapshot s = api.getSnapshot(ref).orElseGet(() -> {
            List<Snapshot> all = new ArrayList<>();
            pages(token -> api.listSnapshots(null, null, PAGE, token), all::addAll);
            return all.stream().filter(x -> x.name().equals(ref)).findFirst()
                    .orElseThrow(() -> new StowageException(ErrorCode.NOT_FOUND,
                            "no snapshot has the id or name '" + ref + "'"));
        });
        api.deleteSnapshot(s.id());
        done("deleted snapshot", s.id(), s.name());
    }

    // ---- helpers ----

    /** The volume with this id, else the one with this name; NOT_FOUND if neither exists. */
    private Volume resolveVolume(String ref) {
        if (ref.startsWith("vol-")) {
            Optional<Volume> byId = api.getVolume(ref);
            if (byId.isPresent()) {
                return byId.get();
            }
        }
        return allVolumes().stream().filter(v -> v.name().equals(ref)).findFirst()
                .orElseThrow(() -> new StowageException(ErrorCode.NOT_FOUND,
                        "no volume has the id or name '" + ref + "'"));
    }

    private List<Volume> allVolumes() {
        List<Volume> volumes = new ArrayList<>();
        pages(token -> api.listVolumes(PAGE, token), volumes::addAll);
        return volumes;
    }

    private static <T> void pages(java.util.function.Function<String, Page<T>> fetch, Consumer<List<T>> sink) {
        String token = "";
        do {
            Page<T> page = fetch.apply(token);
            sink.accept(page.items());
            token = page.nextToken();
        } while (token != null && !token.isEmpty());
    }

    private void showVolume(Volume v) {
        if (json) {
            JsonWriter w = new JsonWriter();
            Views.volumeJson(w, v);
            print(w);
        } else {
            out.print(Views.volumeDetails(v).render());
        }
    }

    private void done(String what, String id, String name) {
        if (json) {
            print(new JsonWriter().beginObject().name("id").value(id).name("name").value(name)
                    .name("result").value(what).endObject());
        } else {
            out.println(what + " " + name + " (" + id + ")");
        }
    }

    private void print(JsonWriter w) {
        out.println(w);
    }
}
