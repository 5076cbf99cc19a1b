package dev.stowage.engine.api.grpc;

import dev.stowage.engine.cluster.ClusterToken;
import io.grpc.ClientInterceptor;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.grpc.stub.MetadataUtils;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * The {@link ClusterToken} on the management API: sent with every call as the {@code authorization}
 * header ({@code Bearer TOKEN}), and asked of every call before any handler runs.
 */
public final class ApiToken {
    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    private static final String SCHEME = "Bearer ";

    private final ClusterToken token;
    private final String header;

    private ApiToken(ClusterToken token) {
        this.token = token;
        this.header = SCHEME + new String(token.bytes(), StandardCharsets.US_ASCII);
    }

    /** The management API's use of {@code token}. */
    public static ApiToken of(ClusterToken token) {
        return new ApiToken(token);
    }

    /** Reads a {@link ClusterToken} (see {@link ClusterToken#read}) for the management API. */
    public static ApiToken read(String field, Path file) {
        return new ApiToken(ClusterToken.read(field, file));
    }

    /** Sends the token with every call of a channel. */
    public ClientInterceptor clientInterceptor() {
        Metadata headers = new Metadata();
        headers.put(AUTHORIZATION, header);
        return MetadataUtils.newAttachHeadersInterceptor(headers);
    }

    /** Refuses calls that do not carry the token with UNAUTHENTICATED, before any handler runs. */
    public ServerInterceptor serverInterceptor() {
        return new ServerInterceptor() {
            @Override
            public <Q, A> ServerCall.Listener<Q> interceptCall(ServerCall<Q, A> call, Metadata headers,
                                                               ServerCallHandler<Q, A> next) {
                String got = headers.get(AUTHORIZATION);
                if (got == null || !got.startsWith(SCHEME)
                        || !token.matches(got.substring(SCHEME.length()).getBytes(StandardCharsets.US_ASCII))) {
                    call.close(Status.UNAUTHENTICATED.withDescription(got == null
                            ? "this node's management API needs the cluster token (--cluster-token-file of nodes and"
                                    + " the controller, stowctl --token-file)"
                            : "wrong cluster token for this node's management API"), new Metadata());
                    return new ServerCall.Listener<>() {};
                }
                return next.startCall(call, headers);
            }
        };
    }

    @Override
    public String toString() {
        return "ApiToken[redacted]";
    }
}
