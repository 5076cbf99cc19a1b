package dev.stowage.engine.api.grpc;

import dev.stowage.engine.api.StowageException;
import io.grpc.ClientInterceptor;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.grpc.stub.MetadataUtils;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.security.MessageDigest;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The shared secret that the management API asks of its callers: every node of a cluster, stowctl
 * and the CSI controller read the same token from a file and send it with each call, as the
 * {@code authorization} header ({@code Bearer TOKEN}). Without one, anyone who reaches a node's API
 * port can create, attach and delete volumes.
 *
 * <p>From a file, not a flag: a command line is readable by every user of the host through /proc.
 * The file holds the token on one line (a trailing newline is ignored); it must be at least
 * {@link #MIN_LENGTH} printable ASCII characters without spaces. A file that others than its owner
 * may read is accepted with a warning.
 *
 * <p>Comparison takes the same time whatever the mismatch ({@link MessageDigest#isEqual}).
 */
public final class ApiToken {
    private static final Logger LOG = LoggerFactory.getLogger(ApiToken.class);
    /** Shortest token accepted: 128 bits of hex. */
    public static final int MIN_LENGTH = 32;
    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    private static final String SCHEME = "Bearer ";

    private final byte[] expected;
    private final String header;

    private ApiToken(String token) {
        this.expected = (SCHEME + token).getBytes(StandardCharsets.US_ASCII);
        this.header = SCHEME + token;
    }

    /**
     * Reads the token in {@code file}; {@code field} (the flag that named the file) is named in every
     * error, an INVALID_ARGUMENT {@link StowageException}.
     */
    public static ApiToken read(String field, Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw StowageException.invalid(field, "cannot read the token file " + file + ": "
                    + (e instanceof java.nio.file.NoSuchFileException ? "no such file" : e.getMessage()));
        }
        String token = text.endsWith("\n") ? text.substring(0, text.length() - 1) : text;
        if (token.length() < MIN_LENGTH) {
            throw StowageException.invalid(field, "the token in " + file + " has " + token.length()
                    + " characters; at least " + MIN_LENGTH + " are needed");
        }
        for (int i = 0; i < token.length(); i++) {
            char c = token.charAt(i);
            if (c <= ' ' || c > '~') {
                throw StowageException.invalid(field, "the token in " + file + " may hold printable ASCII only,"
                        + " without spaces (character " + (i + 1) + " is not)");
            }
        }
        try {
            Set<PosixFilePermission> mode = Files.getPosixFilePermissions(file);
            if (mode.contains(PosixFilePermission.GROUP_READ) || mode.contains(PosixFilePermission.OTHERS_READ)) {
                LOG.warn("the API token file {} is readable by others than its owner; chmod 600 it", file);
            }
        } catch (IOException | UnsupportedOperationException e) {
            // the mode is advice only
        }
        return new ApiToken(token);
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
                if (got == null || !MessageDigest.isEqual(expected, got.getBytes(StandardCharsets.US_ASCII))) {
                    call.close(Status.UNAUTHENTICATED.withDescription(got == null
                            ? "this node's management API needs its token (--api-token-file of nodes and the controller, stowctl --token-file)"
                            : "wrong token for this node's management API"), new Metadata());
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
