package dev.stowage.engine.frontend.fuse;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Test helper: runs a command with a timeout and returns its exit code and output. */
final class Sh {
    record Result(int exit, String out, String err) {
        Result ok() {
            if (exit != 0) {
                throw new AssertionError("exit " + exit + ": " + err + out);
            }
            return this;
        }
    }

    private Sh() {
    }

    static Result run(String... command) throws IOException, InterruptedException {
        java.io.File errFile = java.io.File.createTempFile("stowage-sh", ".err");
        java.io.File outFile = java.io.File.createTempFile("stowage-sh", ".out");
        try {
            Process p = new ProcessBuilder(List.of(command)).redirectError(errFile).redirectOutput(outFile)
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor();
                throw new AssertionError("timed out: " + String.join(" ", command));
            }
            return new Result(p.exitValue(),
                    java.nio.file.Files.readString(outFile.toPath(), StandardCharsets.UTF_8),
                    java.nio.file.Files.readString(errFile.toPath(), StandardCharsets.UTF_8));
        } finally {
            errFile.delete();
            outFile.delete();
        }
    }
}
