package dev.stowage.csi.server;

import java.util.function.Supplier;

import io.grpc.stub.StreamObserver;

/**
 * Runs the body of a unary CSI handler and completes its observer: the result on success, the status
 * from {@link StatusMapping} on failure. Every handler goes through here so no failure escapes unmapped.
 *
 * <p>Threading: runs the body on the calling (gRPC executor) thread; never on a Netty event loop.
 */
public final class Calls {
    private Calls() {}

    public static <T> void unary(String method, StreamObserver<T> observer, Supplier<T> body) {
        T response;
        try {
            response = body.get();
        } catch (RuntimeException | Error e) {
            observer.onError(StatusMapping.toException(method, e));
            return;
        }
        observer.onNext(response);
        observer.onCompleted();
    }
}
