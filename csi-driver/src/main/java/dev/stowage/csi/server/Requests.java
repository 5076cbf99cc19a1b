package dev.stowage.csi.server;

import java.util.HashMap;
import java.util.Map;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;

/**
 * Validation helpers for CSI requests. Failures are INVALID_ARGUMENT {@link StowageException}s whose
 * field is spelled as in the CSI spec (e.g. {@code volume_capability.access_mode}).
 */
public final class Requests {
    /** StorageClass parameters the Kubernetes external-provisioner adds (PVC name etc.), not ours to validate. */
    public static final String KUBERNETES_PREFIX = "csi.storage.k8s.io/";

    private Requests() {}

    /** "field is required" as an INVALID_ARGUMENT error. */
    public static StowageException missing(String field) {
        return new StowageException(ErrorCode.INVALID_ARGUMENT, field, field + " is required", null);
    }

    /** A malformed field, with a message saying what is wrong. */
    public static StowageException invalid(String field, String problem) {
        return new StowageException(ErrorCode.INVALID_ARGUMENT, field, field + " " + problem, null);
    }

    /** Returns {@code value} or throws "field is required" when it is empty. */
    public static String require(String field, String value) {
        if (value == null || value.isEmpty()) {
            throw missing(field);
        }
        return value;
    }

    /** Throws "field is required" unless {@code present}. */
    public static void require(String field, boolean present) {
        if (!present) {
            throw missing(field);
        }
    }

    /** A non-negative max_entries. */
    public static int maxEntries(int maxEntries) {
        if (maxEntries < 0) {
            throw invalid("max_entries", "must not be negative, got " + maxEntries);
        }
        return maxEntries;
    }

    /** {@code parameters} without the keys Kubernetes adds under {@value #KUBERNETES_PREFIX}. */
    public static Map<String, String> withoutKubernetesKeys(Map<String, String> parameters) {
        Map<String, String> kept = new HashMap<>();
        parameters.forEach((key, value) -> {
            if (!key.startsWith(KUBERNETES_PREFIX)) {
                kept.put(key, value);
            }
        });
        return kept;
    }

    /** NOT_FOUND "volume X does not exist". */
    public static StowageException volumeNotFound(String volumeId) {
        return StowageException.notFound("volume", volumeId);
    }
}
