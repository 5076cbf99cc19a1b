package dev.stowage.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * STYLE.md habit 1, enforced: engine code does not import gRPC, fabric8, jetcd or protobuf, except
 * at the named edges (jetcd only in cluster.etcd; gRPC in cluster.etcd and the management API adapter
 * api.grpc; protobuf only in *Protos converters, cluster.etcd and api.grpc).
 */
class ImportRulesTest {
    private static final Path SOURCES = Path.of("src/main/java/dev/stowage/engine");

    @Test
    void domainCodeImportsNoTransportOrStoreLibraries() throws IOException {
        List<String> violations = new ArrayList<>();
        int files = 0;
        try (Stream<Path> paths = Files.walk(SOURCES)) {
            for (Path file : paths.filter(p -> p.toString().endsWith(".java")).toList()) {
                files++;
                String rel = SOURCES.relativize(file).toString();
                for (String line : Files.readAllLines(file)) {
                    if (!line.startsWith("import ")) {
                        continue;
                    }
                    if (line.contains(" io.fabric8.") || (line.contains(" io.grpc.") && !rel.startsWith("cluster/etcd/")
                            && !rel.startsWith("api/grpc/"))) {
                        violations.add(rel + ": " + line);
                    }
                    if (line.contains(" io.etcd.") && !rel.startsWith("cluster/etcd/")) {
                        violations.add(rel + ": " + line);
                    }
                    if (line.contains(" com.google.protobuf.") && !rel.endsWith("Protos.java")
                            && !rel.startsWith("cluster/etcd/") && !rel.startsWith("api/grpc/")) {
                        violations.add(rel + ": " + line);
                    }
                }
            }
        }
        assertTrue(files > 10, "found only " + files + " source files under " + SOURCES.toAbsolutePath());
        assertEquals(List.of(), violations);
    }
}
