package dev.stowage.csi.server;

import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongSupplier;

import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Logs every CSI call once, when it completes: method, status, duration and the request with every
 * secret removed ({@link Secrets}). Calls that orchestrators repeat every few seconds (Probe, the
 * capability and info calls, volume stats) are logged at debug, the others at info; failures with
 * INTERNAL or UNKNOWN at warn.
 *
 * <p>Threading: thread-safe; holds per-call state only in the wrappers it creates.
 */
public final class LoggingInterceptor implements ServerInterceptor {
    private static final Logger LOG = LoggerFactory.getLogger(LoggingInterceptor.class);
    private static final Set<String> ROUTINE = Set.of("Probe", "GetPluginInfo", "GetPluginCapabilities",
            "ControllerGetCapabilities", "NodeGetCapabilities", "NodeGetInfo", "NodeGetVolumeStats", "GetCapacity");

    private final LongSupplier nanoClock;

    public LoggingInterceptor() {
        this(System::nanoTime);
    }

    /** With an injected monotonic clock in nanoseconds (tests). */
    public LoggingInterceptor(LongSupplier nanoClock) {
        this.nanoClock = nanoClock;
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
        String method = call.getMethodDescriptor().getBareMethodName();
        long start = nanoClock.getAsLong();
        AtomicReference<Object> request = new AtomicReference<>();
        ServerCall<Q, R> logging = new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
            @Override
            public void close(Status status, Metadata trailers) {
                log(method, status, TimeUnit.NANOSECONDS.toMillis(nanoClock.getAsLong() - start), request.get());
                super.close(status, trailers);
            }
        };
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(next.startCall(logging, headers)) {
            @Override
            public void onMessage(Q message) {
                request.set(message);
                super.onMessage(message);
            }
        };
    }

    private static void log(String method, Status status, long millis, Object request) {
        boolean serverFault = status.getCode() == Status.Code.INTERNAL || status.getCode() == Status.Code.UNKNOWN;
        boolean routine = ROUTINE.contains(method) && !serverFault;
        if (routine ? !LOG.isDebugEnabled() : !LOG.isInfoEnabled()) {
            return;
        }
        String text = request == null ? "" : Secrets.toLogString(request);
        String description = status.getDescription() == null ? "" : " (" + status.getDescription() + ")";
        String line = "CSI " + method + " " + status.getCode() + description + " in " + millis + " ms: {" + text + "}";
        if (serverFault) {
            LOG.warn(line);
        } else if (routine) {
            LOG.debug(line);
        } else {
            LOG.info(line);
        }
    }
}
