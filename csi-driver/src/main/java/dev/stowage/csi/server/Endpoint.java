package dev.stowage.csi.server;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;

/**
 * Parses a CSI endpoint into the path of its Unix domain socket. Accepted forms are
 * {@code unix:///abs/path/csi.sock} (what the Kubernetes sidecars pass as {@code CSI_ENDPOINT}),
 * {@code unix:/abs/path} and a plain absolute path. Anything else (TCP endpoints, relative paths,
 * a host part) is rejected with an {@link IllegalArgumentException} that says what was expected.
 */
public final class Endpoint {
    private Endpoint() {}

    public static Path parse(String endpoint) {
        if (endpoint == null || endpoint.isBlank()) {
            throw new IllegalArgumentException("CSI endpoint is empty: expected unix:///absolute/path/csi.sock");
        }
        String value = endpoint.strip();
        if (value.startsWith("/")) {
            return checked(endpoint, value);
        }
        URI uri;
        try {
            uri = new URI(value);
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("CSI endpoint '" + endpoint + "' is not a valid URI: expected "
                    + "unix:///absolute/path/csi.sock");
        }
        if (uri.getScheme() == null) {
            throw new IllegalArgumentException("CSI endpoint '" + endpoint + "' is a relative path: expected "
                    + "unix:///absolute/path/csi.sock or an absolute path");
        }
        if (!uri.getScheme().equals("unix")) {
            throw new IllegalArgumentException("CSI endpoint '" + endpoint + "' uses scheme '" + uri.getScheme()
                    + "': only unix domain sockets (unix:///absolute/path) are supported");
        }
        if (uri.getRawAuthority() != null && !uri.getRawAuthority().isEmpty()) {
            throw new IllegalArgumentException("CSI endpoint '" + endpoint + "' has a host part '" + uri.getRawAuthority()
                    + "': write unix:///absolute/path (three slashes)");
        }
        String path = uri.getPath();
        if (path == null || !path.startsWith("/")) {
            throw new IllegalArgumentException("CSI endpoint '" + endpoint + "' has no absolute path: expected "
                    + "unix:///absolute/path/csi.sock");
        }
        return checked(endpoint, path);
    }

    private static Path checked(String endpoint, String path) {
        Path socket = Path.of(path).normalize();
        if (socket.getFileName() == null) {
            throw new IllegalArgumentException("CSI endpoint '" + endpoint + "' names a directory, not a socket file");
        }
        return socket;
    }
}
