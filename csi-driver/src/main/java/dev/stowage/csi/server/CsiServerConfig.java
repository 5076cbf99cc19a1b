package dev.stowage.csi.server;

import java.util.EnumSet;
import java.util.Set;

/**
 * How a {@link CsiServer} is set up: where it listens, the name and version it reports, the node id it
 * reports from NodeGetInfo (null: the engine's local node id) and which CSI services it serves. The
 * Identity service is always served.
 *
 * @param endpoint    {@code unix:///abs/path} or an absolute path (see {@link Endpoint})
 * @param driverName  CSI driver name, e.g. {@value #DEFAULT_DRIVER_NAME}
 * @param version     the vendor version reported by GetPluginInfo
 * @param nodeId      the node id for NodeGetInfo, or null to use the engine's
 * @param services    CONTROLLER, NODE or both; not empty
 */
public record CsiServerConfig(String endpoint, String driverName, String version, String nodeId,
                              Set<Service> services) {
    public static final String DEFAULT_DRIVER_NAME = "csi.stowage.dev";

    /** The optional CSI services; Identity is always on. */
    public enum Service { CONTROLLER, NODE }

    public CsiServerConfig {
        Endpoint.parse(endpoint);
        if (driverName == null || driverName.isBlank()) {
            driverName = DEFAULT_DRIVER_NAME;
        }
        // CSI: at most 63 characters, begins and ends with an alphanumeric, [a-z0-9-.] in between.
        if (driverName.length() > 63 || !driverName.matches("[A-Za-z0-9]([A-Za-z0-9.\\-]*[A-Za-z0-9])?")) {
            throw new IllegalArgumentException("driver name '" + driverName + "' must be at most 63 characters of "
                    + "[a-z0-9.-], beginning and ending with an alphanumeric character");
        }
        if (version == null || version.isBlank()) {
            throw new IllegalArgumentException("version is required");
        }
        if (nodeId != null && nodeId.isBlank()) {
            nodeId = null;
        }
        if (services == null || services.isEmpty()) {
            throw new IllegalArgumentException("services must name CONTROLLER, NODE or both");
        }
        services = Set.copyOf(services);
    }

    /** Controller and node services on {@code endpoint}, default driver name, the engine's node id. */
    public static CsiServerConfig both(String endpoint, String version) {
        return new CsiServerConfig(endpoint, DEFAULT_DRIVER_NAME, version, null, EnumSet.allOf(Service.class));
    }

    public boolean serves(Service service) {
        return services.contains(service);
    }
}
