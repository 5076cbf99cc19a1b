package dev.stowage.engine.volume;

import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;

/** The layout of Stowage's keys in the metadata store (see DESIGN.md, "Metadata"). */
final class MetadataKeys {
    static final String VOLUMES = "/stowage/volumes/";
    static final String SNAPSHOTS = "/stowage/snapshots/";
    static final String VOLUME_NAMES = "/stowage/names/volumes/";
    static final String SNAPSHOT_NAMES = "/stowage/names/snapshots/";
    static final String NODES = "/stowage/nodes/";

    private MetadataKeys() {}

    static String volume(String id) { return VOLUMES + id; }

    static String snapshot(String id) { return SNAPSHOTS + id; }

    /** Names are caller-chosen strings: encoded so that no name can reach into another key's range. */
    static String volumeName(String name) { return VOLUME_NAMES + encode(name); }

    static String snapshotName(String name) { return SNAPSHOT_NAMES + encode(name); }

    static String node(String id) { return NODES + id; }

    private static String encode(String name) {
        return URLEncoder.encode(name, StandardCharsets.UTF_8);
    }
}
