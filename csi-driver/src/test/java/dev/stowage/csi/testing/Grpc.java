package dev.stowage.csi.testing;

import java.util.function.BiConsumer;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Calls a unary service method directly (e.g. {@code call(controller::createVolume, request)}) and returns its
 * response, or throws the status it failed with.
 */
public final class Grpc {
    private Grpc() {}

    public static <Q, R> R call(BiConsumer<Q, StreamObserver<R>> method, Q request) {
        Recorder<R> recorder = new Recorder<>();
        method.accept(request, recorder);
        if (recorder.error != null) {
            throw recorder.error instanceof StatusRuntimeException s ? s
                    : Status.fromThrowable(recorder.error).asRuntimeException();
        }
        if (!recorder.completed || recorder.value == null) {
            throw new AssertionError("call neither completed nor failed");
        }
        return recorder.value;
    }

    /** Asserts that the call fails with {@code code} and returns the status description. */
    public static <Q, R> String fails(Status.Code code, BiConsumer<Q, StreamObserver<R>> method, Q request) {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> call(method, request));
        assertEquals(code, e.getStatus().getCode(), () -> "unexpected status: " + e.getStatus());
        return e.getStatus().getDescription();
    }

    private static final class Recorder<T> implements StreamObserver<T> {
        T value;
        Throwable error;
        boolean completed;

        @Override
        public void onNext(T value) {
            this.value = value;
        }

        @Override
        public void onError(Throwable t) {
            this.error = t;
        }

        @Override
        public void onCompleted() {
            this.completed = true;
        }
    }
}
