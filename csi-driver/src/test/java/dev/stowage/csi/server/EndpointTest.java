package dev.stowage.csi.server;

import java.nio.file.Path;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EndpointTest {
    @Test
    void acceptsUnixUrlsAndAbsolutePaths() {
        assertEquals(Path.of("/csi/csi.sock"), Endpoint.parse("unix:///csi/csi.sock"));
        assertEquals(Path.of("/csi/csi.sock"), Endpoint.parse("unix:/csi/csi.sock"));
        assertEquals(Path.of("/var/lib/kubelet/plugins/csi.stowage.dev/csi.sock"),
                Endpoint.parse("/var/lib/kubelet/plugins/csi.stowage.dev/csi.sock"));
    }

    @Test
    void rejectsEverythingElseWithAClearMessage() {
        assertTrue(message("").contains("empty"));
        assertTrue(message("tcp://127.0.0.1:10000").contains("only unix domain sockets"));
        assertTrue(message("unix://csi/csi.sock").contains("host part"));
        assertTrue(message("csi.sock").contains("relative path"));
        assertTrue(message("unix:///").contains("not a socket file"));
    }

    private static String message(String endpoint) {
        return assertThrows(IllegalArgumentException.class, () -> Endpoint.parse(endpoint)).getMessage();
    }
}
