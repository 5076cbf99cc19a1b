package dev.stowage.csi.mount;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs one host command with a deadline and captures its output. Standard input is /dev/null, the
 * locale is C (so messages can be shown to operators as they are), and a command that outlives its
 * deadline is killed.
 *
 * <p>Threading: thread-safe; each call runs its own process and blocks the calling thread.
 */
final class CommandRunner {

    /** What a finished command printed and returned. */
    record Result(int exitCode, String stdout, String stderr) {}

    private final Duration timeout;

    CommandRunner(Duration timeout) {
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be positive, got " + timeout);
        }
        this.timeout = timeout;
    }

    /** Runs {@code command} and returns its result whatever its exit code; throws only if it could not run or timed out. */
    Result run(List<String> command) {
        Path out = null;
        Path err = null;
        Process process = null;
        try {
            out = Files.createTempFile("stowage-cmd", ".out");
            err = Files.createTempFile("stowage-cmd", ".err");
            ProcessBuilder builder = new ProcessBuilder(command)
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .redirectOutput(out.toFile())
                    .redirectError(err.toFile());
            builder.environment().put("LC_ALL", "C");
            process = builder.start();
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                process.waitFor(5, TimeUnit.SECONDS);
                throw new MountException(String.join(" ", command) + " did not finish within " + timeout.toSeconds()
                        + " s and was killed");
            }
            return new Result(process.exitValue(), Files.readString(out, StandardCharsets.UTF_8).strip(),
                    Files.readString(err, StandardCharsets.UTF_8).strip());
        } catch (IOException e) {
            throw new MountException("cannot run " + command.get(0) + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            if (process != null) {
                process.destroyForcibly();
            }
            throw new MountException(String.join(" ", command) + " was interrupted", e);
        } finally {
            deleteQuietly(out);
            deleteQuietly(err);
        }
    }

    /** Runs {@code command} and throws a {@link MountException} with its stderr unless it exits with 0. */
    Result runChecked(List<String> command) {
        Result result = run(command);
        if (result.exitCode() != 0) {
            throw failure(command, result);
        }
        return result;
    }

    static MountException failure(List<String> command, Result result) {
        String detail = result.stderr().isEmpty() ? result.stdout() : result.stderr();
        return new MountException(String.join(" ", command) + " failed with exit status " + result.exitCode()
                + (detail.isEmpty() ? "" : ": " + detail));
    }

    private static void deleteQuietly(Path path) {
        if (path != null) {
            try {
                Files.deleteIfExists(path);
            } catch (IOException ignored) {
                // a temp file left behind is harmless
            }
        }
    }
}
