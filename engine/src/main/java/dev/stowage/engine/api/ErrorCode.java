package dev.stowage.engine.api;

/**
 * What went wrong, in terms a caller can act on. Each gRPC boundary maps these to status codes
 * in one table; nothing else crosses it.
 */
public enum ErrorCode {
    /** A field of the request is missing or malformed; {@link StowageException#field()} names it. */
    INVALID_ARGUMENT,
    NOT_FOUND,
    /** An object of that name exists with an incompatible specification. */
    ALREADY_EXISTS,
    /** A size is outside what can be provided. */
    OUT_OF_RANGE,
    /** The object is in a state that forbids the operation (e.g. a volume still attached). */
    FAILED_PRECONDITION,
    /** No capacity or no placement for the request. */
    RESOURCE_EXHAUSTED,
    /** Another operation on the same object is in progress. */
    ABORTED,
    /** The engine is not ready or a dependency is unreachable; retry later. */
    UNAVAILABLE,
    /** The caller did not prove who it is (the management API's token is missing or wrong). */
    UNAUTHENTICATED,
    INTERNAL
}
