package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/**
 * Conformance: the official csi-sanity (kubernetes-csi/csi-test, installed by bin/setup at the pinned
 * version) against a real {@code bin/stowage node} with real FUSE, loop devices and mounts, once for
 * mount volumes and once for raw block volumes. Zero failures are required; the counts are printed
 * for docs/conformance.md.
 */
@Tag("root")
class CsiSanityTest {
    private static final long GIB = 1L << 30;

    @ParameterizedTest
    @ValueSource(strings = {"mount", "block"})
    void csiSanityPasses(String accessType) throws Exception {
        Path dir = Files.createTempDirectory("stowage-sanity-" + accessType + "-");
        Path reports = StowageNode.home().resolve("test/target/csi-sanity");
        Files.createDirectories(reports);
        Path junit = reports.resolve("junit-" + accessType + ".xml");
        Files.deleteIfExists(junit);
        StowageNode node = new StowageNode(dir.resolve("data"), dir.resolve("csi.sock"),
                reports.resolve("node-" + accessType + ".log"), List.of("--node-id", "sanity-node", "--max-volumes", "8"));
        try {
            node.start(Duration.ofMinutes(3));
            Path volumeParams = dir.resolve("volume-params.yaml");
            Files.writeString(volumeParams, "repl: \"1\"\nfsType: ext4\n");
            Path mutableParams = dir.resolve("mutable-params.yaml");
            Files.writeString(mutableParams, "maxIops: \"5000\"\nmaxBytesPerSecond: \"1073741824\"\n");
            Path snapshotParams = dir.resolve("snapshot-params.yaml");
            Files.writeString(snapshotParams, "csi.storage.k8s.io/volumesnapshot/name: sanity-snapshot\n");

            List<String> cmd = new ArrayList<>(List.of("csi-sanity",
                    "--csi.endpoint=" + node.endpoint(),
                    "--csi.mountdir=" + dir.resolve("target"),
                    "--csi.stagingdir=" + dir.resolve("staging"),
                    "--csi.testvolumesize=" + GIB,
                    "--csi.testvolumeexpandsize=" + 2 * GIB,
                    "--csi.testvolumeaccesstype=" + accessType,
                    "--csi.testvolumeparameters=" + volumeParams,
                    "--csi.testsnapshotparameters=" + snapshotParams,
                    "--csi.testvolumemutableparameters=" + mutableParams,
                    "--csi.testnodevolumeattachlimit",
                    "--csi.junitfile=" + junit,
                    "--ginkgo.no-color"));
            Path out = reports.resolve("csi-sanity-" + accessType + ".log");
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                    .redirectOutput(out.toFile()).start();
            if (!p.waitFor(30, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new AssertionError("csi-sanity did not finish within 30 minutes; see " + out);
            }
            Counts counts = Counts.read(junit);
            System.out.printf("csi-sanity %s: %d specs, %d passed, %d failed, %d skipped (exit %d)%n",
                    accessType, counts.total, counts.passed(), counts.failed, counts.skipped, p.exitValue());
            Files.writeString(reports.resolve("summary-" + accessType + ".txt"), String.format(
                    "%s: total=%d passed=%d failed=%d skipped=%d%nskipped:%n%s%n", accessType, counts.total,
                    counts.passed(), counts.failed, counts.skipped, String.join("\n", counts.skippedNames)));
            assertEquals(List.of(), counts.failedNames, "csi-sanity failures (log: " + out + ", node log: "
                    + node.log() + ")");
            assertEquals(0, p.exitValue(), "csi-sanity exit code; see " + out);
            assertTrue(counts.passed() > 50, "csi-sanity ran too few specs: " + counts.passed());
        } finally {
            node.close();
            HostCleanup.cleanup(dir);
        }
    }

    /** Spec counts from csi-sanity's JUnit report. */
    record Counts(int total, int failed, int skipped, List<String> failedNames, List<String> skippedNames) {
        int passed() { return total - failed - skipped; }

        static Counts read(Path junit) throws IOException {
            if (!Files.exists(junit)) {
                throw new AssertionError("csi-sanity wrote no report at " + junit);
            }
            try {
                var doc = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(junit.toFile());
                NodeList cases = doc.getElementsByTagName("testcase");
                int failed = 0;
                int skipped = 0;
                List<String> failedNames = new ArrayList<>();
                List<String> skippedNames = new ArrayList<>();
                for (int i = 0; i < cases.getLength(); i++) {
                    Element c = (Element) cases.item(i);
                    String name = c.getAttribute("name");
                    if (c.getElementsByTagName("failure").getLength() > 0
                            || c.getElementsByTagName("error").getLength() > 0) {
                        failed++;
                        failedNames.add(name);
                    } else if (c.getElementsByTagName("skipped").getLength() > 0) {
                        skipped++;
                        skippedNames.add(name);
                    }
                }
                return new Counts(cases.getLength(), failed, skipped, failedNames, skippedNames);
            } catch (javax.xml.parsers.ParserConfigurationException | org.xml.sax.SAXException e) {
                throw new IOException("unreadable csi-sanity report " + junit + ": " + e.getMessage(), e);
            }
        }
    }
}
