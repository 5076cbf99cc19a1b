package dev.stowage.engine.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a token file may hold; the calls that carry it are tested end to end in StowctlMainTest. */
class ClusterTokenTest {
    @TempDir
    Path dir;

    private StowageException refused(String content) throws Exception {
        Path f = dir.resolve("token");
        Files.writeString(f, content);
        return assertThrows(StowageException.class, () -> ClusterToken.read("--cluster-token-file", f));
    }

    @Test
    void badTokenFilesAreRefusedNamingTheFlag() throws Exception {
        StowageException missing = assertThrows(StowageException.class,
                () -> ClusterToken.read("--cluster-token-file", dir.resolve("absent")));
        assertEquals(ErrorCode.INVALID_ARGUMENT, missing.code());
        assertEquals("--cluster-token-file", missing.field());
        assertTrue(missing.getMessage().contains("absent"), missing.getMessage());

        assertTrue(refused("x".repeat(31)).getMessage().contains("31 characters"));
        assertTrue(refused("x".repeat(31) + "\n").getMessage().contains("31 characters"), "the newline does not count");
        assertTrue(refused("x".repeat(20) + " " + "x".repeat(20)).getMessage().contains("character 21"));
        assertTrue(refused("x".repeat(40) + "\n\n").getMessage().contains("character 41"), "one newline only is ignored");
    }

    @Test
    void aValidTokenIsReadWithOrWithoutItsNewlineAndNeverPrinted() throws Exception {
        Path f = dir.resolve("token");
        Files.writeString(f, "0123456789abcdef0123456789abcdef\n");
        ClusterToken token = ClusterToken.read("--cluster-token-file", f);
        assertEquals("ClusterToken[redacted]", token.toString());
        Files.writeString(f, "0123456789abcdef0123456789abcdef");
        ClusterToken.read("--cluster-token-file", f);
    }
}
