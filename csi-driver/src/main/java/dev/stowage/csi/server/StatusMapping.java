package dev.stowage.csi.server;


import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.grpc.ManagementStatus;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one table that turns failures into gRPC status for every CSI call. A {@link StowageException}
 * maps by its error code through the table the management API uses too ({@link ManagementStatus#statusCode});
 * a {@link StatusRuntimeException} passes through; anything else is
 * INTERNAL with a generic message and is logged once here, with its stack trace. Messages sent to the
 * caller never contain Java class names or stack traces.
 *
 * <p>Threading: stateless and thread-safe.
 */
public final class StatusMapping {
    private static final Logger LOG = LoggerFactory.getLogger(StatusMapping.class);

    private StatusMapping() {}

    /** The status for {@code failure} of the call {@code method} (for the log line of unexpected failures). */
    public static Status toStatus(String method, Throwable failure) {
        if (failure instanceof StowageException e) {
            Status.Code code = ManagementStatus.statusCode(e.code());
            String message = e.getMessage() == null ? e.code().name().toLowerCase() : e.getMessage();
            if (code == Status.Code.INTERNAL) {
                LOG.warn("{} failed: {}", method, message, e.getCause());
            }
            return Status.fromCode(code).withDescription(message);
        }
        if (failure instanceof StatusRuntimeException e) {
            return e.getStatus();
        }
        LOG.error("{} failed unexpectedly", method, failure);
        return Status.INTERNAL.withDescription("internal error in " + method + "; see the driver log");
    }

    /** {@link #toStatus} as an exception to hand to a response observer. */
    public static StatusRuntimeException toException(String method, Throwable failure) {
        return toStatus(method, failure).asRuntimeException();
    }
}
