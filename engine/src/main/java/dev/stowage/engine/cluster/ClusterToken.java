package dev.stowage.engine.cluster;

import dev.stowage.engine.api.StowageException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.security.MessageDigest;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The secret the members of a cluster share: a node asks it of every caller of its management API
 * and of every connection to its replica server, and sends it on its own. Without one, anyone who
 * reaches those ports can create, attach and delete volumes, or write into replicas.
 *
 * <p>From a file, not a flag: a command line is readable by every user of the host through /proc.
 * The file holds the token on one line (a trailing newline is ignored); it must be at least
 * {@link #MIN_LENGTH} printable ASCII characters without spaces. A file that others than its owner
 * may read is accepted with a warning. Comparisons take the same time whatever the mismatch.
 */
public final class ClusterToken {
    private static final Logger LOG = LoggerFactory.getLogger(ClusterToken.class);
    /** Shortest token accepted: 128 bits of hex. */
    public static final int MIN_LENGTH = 32;

    private final byte[] token;

    private ClusterToken(byte[] token) {
        this.token = token;
    }

    /**
     * Reads the token in {@code file}; {@code field} (the flag that named the file) is named in every
     * error, an INVALID_ARGUMENT {@link StowageException}.
     */
    public static ClusterToken read(String field, Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw StowageException.invalid(field, "cannot read the token file " + file + ": "
                    + (e instanceof NoSuchFileException ? "no such file" : e.getMessage()));
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
                LOG.warn("the cluster token file {} is readable by others than its owner; chmod 600 it", file);
            }
        } catch (IOException | UnsupportedOperationException e) {
            // the mode is advice only
        }
        return new ClusterToken(token.getBytes(StandardCharsets.US_ASCII));
    }

    /** The token's bytes (a copy), to send. */
    public byte[] bytes() {
        return token.clone();
    }

    /** Whether {@code presented} is this token, in time that does not depend on where they differ. */
    public boolean matches(byte[] presented) {
        return presented != null && MessageDigest.isEqual(token, presented);
    }

    @Override
    public String toString() {
        return "ClusterToken[redacted]";
    }
}
