package dev.stowage.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.stowage.csi.testing.InMemoryVolumeService;
import dev.stowage.engine.api.grpc.ApiToken;
import dev.stowage.engine.api.grpc.ManagementServer;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** csi-controller refuses to start, with its reason, when the nodes' management API refuses its token. */
class ControllerCommandTest {
    @TempDir
    Path dir;

    @Test
    @Timeout(60) // without the check the controller would serve on and run() never return
    void aMissingOrWrongClusterTokenStopsTheControllerAtStart() throws Exception {
        Path right = Files.writeString(dir.resolve("right"), "controller-token-0123456789abcdef");
        Path wrong = Files.writeString(dir.resolve("wrong"), "controller-token-fedcba9876543210");
        try (ManagementServer api = ManagementServer.start(new InetSocketAddress("127.0.0.1", 0),
                new InMemoryVolumeService(), Optional.of(ApiToken.read("--cluster-token-file", right)))) {
            String socket = "--csi-endpoint=unix://" + dir.resolve("csi.sock");
            assertEquals(1, ControllerCommand.run(List.of(socket, "--api=" + api.endpoint(),
                    "--cluster-token-file=" + wrong)));
            assertEquals(1, ControllerCommand.run(List.of(socket, "--api=" + api.endpoint())));
            assertFalse(Files.exists(dir.resolve("csi.sock")), "no CSI socket was served");
        }
    }
}
