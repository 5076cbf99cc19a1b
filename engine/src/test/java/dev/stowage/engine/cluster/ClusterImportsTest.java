package dev.stowage.engine.cluster;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Only {@code cluster.etcd} may speak jetcd or gRPC; the rest of the package is domain code. */
class ClusterImportsTest {
    private static final List<String> EDGE_ONLY = List.of("import io.etcd.", "import io.grpc.",
            "import com.google.protobuf.", "import io.fabric8.");

    @Test
    void domainCodeDoesNotImportEdgeLibraries() throws IOException {
        Path cluster = Path.of("src/main/java/dev/stowage/engine/cluster");
        assertTrue(Files.isDirectory(cluster), "run from the engine module: " + cluster.toAbsolutePath());
        List<String> violations = new ArrayList<>();
        try (Stream<Path> files = Files.walk(cluster)) {
            for (Path file : files.filter(f -> f.toString().endsWith(".java")).toList()) {
                if (file.getParent().endsWith("etcd")) {
                    continue;
                }
                for (String line : Files.readAllLines(file)) {
                    if (EDGE_ONLY.stream().anyMatch(line.trim()::startsWith)) {
                        violations.add(file.getFileName() + ": " + line.trim());
                    }
                }
            }
        }
        assertEquals(List.of(), violations);
    }
}
