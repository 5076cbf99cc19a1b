package dev.stowage.test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Removes what a test (or a node it killed) left on the host under one directory: mounts, loop
 * devices whose backing file lies there, and the directory itself. Used in finally blocks, so it
 * never throws; it reports what it could not remove.
 */
public final class HostCleanup {
    private HostCleanup() {}

    /** Mount points at or under {@code dir}, deepest first, from /proc/self/mountinfo. */
    public static List<Path> mountsUnder(Path dir) {
        List<Path> result = new ArrayList<>();
        String prefix = dir.toAbsolutePath().normalize().toString();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"), StandardCharsets.UTF_8)) {
                String[] f = line.split(" ");
                String mountPoint = unescape(f[4]);
                if (mountPoint.equals(prefix) || mountPoint.startsWith(prefix + "/")) {
                    result.add(Path.of(mountPoint));
                }
            }
        } catch (IOException e) {
            System.err.println("cleanup: cannot read mountinfo: " + e.getMessage());
        }
        result.sort(Comparator.comparingInt((Path p) -> p.getNameCount()).reversed());
        return result;
    }

    /** Loop devices whose backing file is at or under {@code dir}. */
    public static List<String> loopsUnder(Path dir) {
        List<String> result = new ArrayList<>();
        String prefix = dir.toAbsolutePath().normalize().toString();
        ProcessResult r = run("losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE");
        for (String line : r.stdout().split("\n")) {
            String[] f = line.trim().split("\\s+", 2);
            if (f.length == 2) {
                String back = f[1].replace(" (deleted)", "").trim();
                if (back.equals(prefix) || back.startsWith(prefix + "/")) {
                    result.add(f[0]);
                }
            }
        }
        return result;
    }

    /**
     * Loop devices whose backing file the kernel names "/": the file of a FUSE mount that was detached
     * lazily while the device held it, so no path finds them any more. None should outlive a test.
     */
    public static List<String> loopsOnADetachedFile() {
        List<String> result = new ArrayList<>();
        ProcessResult r = run("losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE");
        for (String line : r.stdout().split("\n")) {
            String[] f = line.trim().split("\\s+", 2);
            if (f.length == 2 && f[1].trim().equals("/")) {
                result.add(f[0]);
            }
        }
        return result;
    }

    /** Every loop device attached on the host, by name. */
    public static java.util.Set<String> allLoops() {
        return java.util.Set.of(run("losetup", "--list", "--noheadings", "--output", "NAME")
                .stdout().strip().split("\\s+")).stream().filter(x -> !x.isEmpty())
                .collect(java.util.stream.Collectors.toSet());
    }

    /** Unmounts everything under {@code dir}, detaches loop devices on files under it, deletes it. */
    public static void cleanup(Path dir) {
        // Remember the loop devices while their backing paths still resolve: once the FUSE mount under them
        // is unmounted, losetup shows them backed by "/" and they could no longer be found by path.
        List<String> loops = loopsUnder(dir);
        for (int round = 0; round < 3; round++) {
            for (Path m : mountsUnder(dir)) {
                if (run("umount", m.toString()).exitCode() != 0) {
                    run("umount", "-l", m.toString());
                }
            }
            for (String loop : loopsUnder(dir)) {
                run("losetup", "-d", loop);
            }
            for (String loop : loops) {
                if (run("losetup", loop).exitCode() == 0) {
                    run("losetup", "-d", loop);
                }
            }
            if (mountsUnder(dir).isEmpty() && loopsUnder(dir).isEmpty()) {
                break;
            }
        }
        List<Path> leftMounts = mountsUnder(dir);
        List<String> leftLoops = loopsUnder(dir);
        if (!leftMounts.isEmpty() || !leftLoops.isEmpty()) {
            System.err.println("cleanup: still present under " + dir + ": mounts " + leftMounts + ", loops " + leftLoops);
            return;
        }
        run("rm", "-rf", "--one-file-system", dir.toString());
    }

    static String unescape(String s) {
        return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\");
    }

    /** Output and exit code of a finished command. */
    public record ProcessResult(int exitCode, String stdout, String stderr) {}

    /** Runs a command to completion (at most two minutes), capturing its output. */
    public static ProcessResult run(String... command) {
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(false).start();
            p.getOutputStream().close();
            var out = p.getInputStream().readAllBytes();
            var err = p.getErrorStream().readAllBytes();
            if (!p.waitFor(2, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                return new ProcessResult(-1, new String(out, StandardCharsets.UTF_8), "timed out");
            }
            return new ProcessResult(p.exitValue(), new String(out, StandardCharsets.UTF_8),
                    new String(err, StandardCharsets.UTF_8));
        } catch (IOException e) {
            return new ProcessResult(-1, "", e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new ProcessResult(-1, "", "interrupted");
        }
    }
}
