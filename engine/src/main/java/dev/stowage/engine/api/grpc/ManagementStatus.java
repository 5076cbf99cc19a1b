package dev.stowage.engine.api.grpc;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.charset.StandardCharsets;
import java.util.EnumMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one table between the engine's {@link ErrorCode}s and gRPC status codes on the management API, used
 * in both directions: the server turns a {@link StowageException} into a status, and
 * {@link RemoteVolumeService} turns that status back into an equal {@code StowageException} (same code,
 * same field, same message), so callers cannot tell a remote service from a local one.
 *
 * <p>On the wire: the status description is the exception's message, prefixed with {@code "<field>: "}
 * when the message does not already name the field; trailer {@link #FIELD} carries the field alone and
 * trailer {@link #DOMAIN} marks the status as a domain error (as opposed to a transport failure such as a
 * refused connection, whose message the client prefixes with the endpoint). Any other failure on the
 * server is INTERNAL with a generic message and is logged once, here, with its stack trace; Java class
 * names and stack traces never reach the caller.
 *
 * <p>Threading: stateless and thread-safe.
 */
public final class ManagementStatus {
    private static final Logger LOG = LoggerFactory.getLogger(ManagementStatus.class);

    /** The offending field of a domain error (UTF-8), absent when the error is not about one field. */
    public static final Metadata.Key<byte[]> FIELD =
            Metadata.Key.of("stowage-field-bin", Metadata.BINARY_BYTE_MARSHALLER);
    /** Present (value "1") when the status carries a domain error. */
    public static final Metadata.Key<String> DOMAIN =
            Metadata.Key.of("stowage-domain-error", Metadata.ASCII_STRING_MARSHALLER);

    private static final Map<ErrorCode, Status.Code> TABLE = new EnumMap<>(Map.of(
            ErrorCode.INVALID_ARGUMENT, Status.Code.INVALID_ARGUMENT,
            ErrorCode.NOT_FOUND, Status.Code.NOT_FOUND,
            ErrorCode.ALREADY_EXISTS, Status.Code.ALREADY_EXISTS,
            ErrorCode.OUT_OF_RANGE, Status.Code.OUT_OF_RANGE,
            ErrorCode.FAILED_PRECONDITION, Status.Code.FAILED_PRECONDITION,
            ErrorCode.RESOURCE_EXHAUSTED, Status.Code.RESOURCE_EXHAUSTED,
            ErrorCode.ABORTED, Status.Code.ABORTED,
            ErrorCode.UNAVAILABLE, Status.Code.UNAVAILABLE,
            ErrorCode.UNAUTHENTICATED, Status.Code.UNAUTHENTICATED,
            ErrorCode.INTERNAL, Status.Code.INTERNAL));

    private static final Map<Status.Code, ErrorCode> REVERSE = new EnumMap<>(Status.Code.class);

    static {
        TABLE.forEach((domain, grpc) -> REVERSE.put(grpc, domain));
        // Transport outcomes with no domain twin: a call that ran out of time may succeed if retried.
        REVERSE.put(Status.Code.DEADLINE_EXCEEDED, ErrorCode.UNAVAILABLE);
    }

    private ManagementStatus() {}

    /** The status code for a domain error code. */
    public static Status.Code statusCode(ErrorCode code) {
        return TABLE.getOrDefault(code, Status.Code.INTERNAL);
    }

    /** The domain error code for a status code; codes with no twin are INTERNAL. */
    public static ErrorCode errorCode(Status.Code code) {
        return REVERSE.getOrDefault(code, ErrorCode.INTERNAL);
    }

    /** The exception to hand to the response observer of {@code method} that failed with {@code failure}. */
    public static StatusRuntimeException toException(String method, Throwable failure) {
        if (failure instanceof StowageException e) {
            Status.Code code = statusCode(e.code());
            String message = e.getMessage() == null || e.getMessage().isEmpty()
                    ? e.code().name().toLowerCase() : e.getMessage();
            Metadata trailers = new Metadata();
            trailers.put(DOMAIN, "1");
            if (e.field() != null) {
                trailers.put(FIELD, e.field().getBytes(StandardCharsets.UTF_8));
                if (!message.contains(e.field())) {
                    message = e.field() + ": " + message;
                }
            }
            if (code == Status.Code.INTERNAL) {
                LOG.warn("{} failed: {}", method, message, e.getCause());
            }
            return Status.fromCode(code).withDescription(message).asRuntimeException(trailers);
        }
        if (failure instanceof StatusRuntimeException e) {
            return e;
        }
        LOG.error("{} failed unexpectedly", method, failure);
        return Status.INTERNAL.withDescription("internal error in " + method + "; see the node log")
                .asRuntimeException();
    }

    /**
     * The domain error equal to the one the server reported, or for a transport failure (no domain
     * trailer) an error of the mapped code whose message names {@code endpoint}.
     */
    public static StowageException toStowage(StatusRuntimeException e, String endpoint) {
        Status status = e.getStatus();
        ErrorCode code = errorCode(status.getCode());
        Metadata trailers = e.getTrailers();
        String description = status.getDescription() == null ? status.getCode().name() : status.getDescription();
        if (trailers != null && trailers.containsKey(DOMAIN)) {
            byte[] field = trailers.get(FIELD);
            return new StowageException(code, field == null ? null : new String(field, StandardCharsets.UTF_8),
                    description, null);
        }
        String message = "management API at " + endpoint + ": " + description;
        if (status.getCause() != null && status.getCause().getMessage() != null) {
            message += " (" + status.getCause().getMessage() + ")";
        }
        return new StowageException(code, null, message, e);
    }
}
