package dev.stowage.engine.cluster.etcd;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.cluster.CompactedRevisionException;
import dev.stowage.engine.cluster.RevisionMismatchException;
import io.etcd.jetcd.common.exception.ClosedClientException;
import io.etcd.jetcd.common.exception.EtcdException;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;

import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeoutException;

/**
 * Translates jetcd failures into the errors the {@code MetadataStore} contract promises: the
 * store's own exceptions pass through; an unreachable or silent etcd becomes
 * {@link StowageException} with {@link ErrorCode#UNAVAILABLE}; anything else becomes
 * {@link IllegalStateException} naming the operation. Decisions use error codes, never message text.
 */
final class EtcdErrors {
    private final String endpoints;

    EtcdErrors(String endpoints) {
        this.endpoints = endpoints;
    }

    /** {@code what} names the operation and key, e.g. {@code "put /stowage/volumes/v1"}. */
    RuntimeException translate(String what, Throwable failure) {
        Throwable t = failure;
        while ((t instanceof CompletionException || t instanceof ExecutionException) && t.getCause() != null) {
            t = t.getCause();
        }
        if (t instanceof RevisionMismatchException || t instanceof IllegalArgumentException
                || t instanceof StowageException || t instanceof CompactedRevisionException) {
            return (RuntimeException) t;
        }
        if (t instanceof TimeoutException) {
            return new StowageException(ErrorCode.UNAVAILABLE, null,
                    "etcd " + endpoints + ": " + what + " got no answer in time", t);
        }
        if (t instanceof ClosedClientException) {
            return new IllegalStateException("etcd metadata store is closed (" + what + ")", t);
        }
        switch (statusCode(t)) {
            case UNAVAILABLE, DEADLINE_EXCEEDED -> {
                return new StowageException(ErrorCode.UNAVAILABLE, null,
                        "etcd " + endpoints + " unavailable: " + what + ": " + t.getMessage(), t);
            }
            default -> {
                return new IllegalStateException("etcd " + endpoints + ": " + what + " failed: " + t.getMessage(), t);
            }
        }
    }

    /**
     * The gRPC status of a failure: jetcd reports some as {@link EtcdException} and passes others
     * through as gRPC status exceptions.
     */
    static Status.Code statusCode(Throwable failure) {
        for (Throwable t = failure; t != null; t = t.getCause()) {
            if (t instanceof EtcdException e) {
                return Status.Code.valueOf(e.getErrorCode().name());
            }
            if (t instanceof StatusRuntimeException || t instanceof StatusException) {
                return Status.fromThrowable(t).getCode();
            }
        }
        return Status.Code.UNKNOWN;
    }

    /** Whether {@code failure} is etcd's NOT_FOUND (a lease that does not exist, for puts and revokes). */
    static boolean isNotFound(Throwable failure) {
        return statusCode(failure) == Status.Code.NOT_FOUND;
    }
}
