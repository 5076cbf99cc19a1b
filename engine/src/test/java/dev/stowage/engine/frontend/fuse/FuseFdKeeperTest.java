package dev.stowage.engine.frontend.fuse;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The fd keeper's protocol against a real keeper on a Unix socket, with fds of this process:
 * what it holds are copies of the same open files (pidfd_getfd needs root).
 */
@Tag("root")
class FuseFdKeeperTest {
    @TempDir
    Path tmp;
    private FuseFdKeeper keeper;
    private Thread serving;
    private FuseFdKeeperClient client;

    @BeforeEach
    void start() throws IOException {
        keeper = FuseFdKeeper.bind(tmp.resolve("run/keeper.sock"), java.time.Duration.ofSeconds(2),
                java.time.Duration.ofMillis(500));
        serving = new Thread(keeper::serve, "keeper");
        serving.setDaemon(true);
        serving.start();
        client = new FuseFdKeeperClient(tmp.resolve("run/keeper.sock"));
    }

    @AfterEach
    void stop() throws Exception {
        keeper.close();
        serving.join(5000);
    }

    @Test
    void heldFdsComeBackAsTheSameOpenFilesUntilDropped() throws Exception {
        Path file = Files.writeString(tmp.resolve("f"), "");
        int fd = Native.LIBC.open(file.toString(), 1 /* O_WRONLY */);
        assertTrue(fd >= 0);
        client.hold("vol-a", List.of(fd));
        assertEquals(List.of("vol-a"), client.list());
        Native.LIBC.close(fd); // the keeper's copy keeps the file open

        List<Integer> back = client.take("vol-a").orElseThrow();
        assertEquals(1, back.size());
        byte[] text = "through the kept fd".getBytes(StandardCharsets.UTF_8);
        java.nio.ByteBuffer buffer = java.nio.ByteBuffer.allocateDirect(text.length).put(text).flip();
        assertEquals(text.length, Native.LIBC.write(back.get(0), Native.pointer(buffer), text.length));
        Native.LIBC.close(back.get(0));
        assertEquals("through the kept fd", Files.readString(file));

        client.drop("vol-a");
        assertEquals(List.of(), client.list());
        assertEquals(Optional.empty(), client.take("vol-a"));
    }

    /**
     * Held for a process that ended and no new HOLD: given up after the orphan timeout (2 s here),
     * so that I/O waiting on a node that never comes back fails instead of hanging. Held for a live
     * process: kept however long.
     */
    @Test
    void aConnectionWhoseNodeIsGoneIsGivenUpAfterTheOrphanTimeout() throws Exception {
        Process child = new ProcessBuilder("sleep", "60").start();
        try {
            keeper.handle("HOLD vol-gone " + child.pid() + " 1"); // the child's stdout pipe
            Path file = Files.writeString(tmp.resolve("f"), "");
            int fd = Native.LIBC.open(file.toString(), 0);
            client.hold("vol-live", List.of(fd));
            Native.LIBC.close(fd);
            assertEquals(List.of("vol-gone", "vol-live"), client.list());

            child.destroyForcibly().waitFor();
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (client.list().contains("vol-gone")) {
                assertTrue(System.nanoTime() < deadline, "the orphan is still held");
                Thread.sleep(100);
            }
            assertEquals(List.of("vol-live"), client.list(), "a connection of a live process is kept");
        } finally {
            child.destroyForcibly();
        }
    }

    /**
     * A holder is its pid and its start time: a process that got the pid of a node long gone is
     * not that node, and must not keep the node's connections from being given up.
     */
    @Test
    void aReusedPidDoesNotKeepAnOrphanAlive() throws Exception {
        long me = ProcessHandle.current().pid();
        java.time.Instant started = FuseFdKeeper.startOf(me);
        assertTrue(started != null, "this process's start time is readable");
        assertTrue(FuseFdKeeper.isRunning(me, started));
        assertFalse(FuseFdKeeper.isRunning(me, started.minusSeconds(1)), "another process with the same pid");
        Process child = new ProcessBuilder("true").start();
        child.waitFor();
        assertFalse(FuseFdKeeper.isRunning(child.pid(), null), "an ended process");
    }

    /** A client that connects and says nothing is cut off; the nodes queued behind it are answered. */
    @Test
    void aSilentClientDoesNotStopTheKeeper() throws Exception {
        try (var silent = java.nio.channels.SocketChannel.open(java.net.UnixDomainSocketAddress.of(
                tmp.resolve("run/keeper.sock")))) {
            long start = System.nanoTime();
            assertEquals(List.of(), client.list());
            long millis = (System.nanoTime() - start) / 1_000_000;
            assertTrue(millis < FuseFdKeeperClient.TIMEOUT_MILLIS, "answered after " + millis + " ms");
            assertEquals(-1, silent.read(java.nio.ByteBuffer.allocate(16)), "the silent client is closed on");
        }
    }

    /** A keeper that does not answer (stopped, hung) costs a request five seconds, not an attach forever. */
    @Test
    void aKeeperThatDoesNotAnswerTimesOut() throws Exception {
        Path silent = tmp.resolve("silent.sock");
        try (var server = java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            server.bind(java.net.UnixDomainSocketAddress.of(silent)); // connections wait in the backlog
            long start = System.nanoTime();
            IOException e = assertThrows(IOException.class, () -> new FuseFdKeeperClient(silent).list());
            long millis = (System.nanoTime() - start) / 1_000_000;
            assertTrue(e.getMessage().contains("LIST failed: no answer within 5000 ms"), e.getMessage());
            assertTrue(millis >= FuseFdKeeperClient.TIMEOUT_MILLIS, "gave up after " + millis + " ms");
        }
    }

    @Test
    void aNewHoldReplacesTheOldAndBadRequestsAreRefusedByName() throws Exception {
        Path one = Files.writeString(tmp.resolve("one"), "1");
        Path two = Files.writeString(tmp.resolve("two"), "2");
        int fdA = Native.LIBC.open(one.toString(), 0);
        int fdB = Native.LIBC.open(two.toString(), 0);
        client.hold("vol-b", List.of(fdA));
        client.hold("vol-b", List.of(fdB));
        List<Integer> back = client.take("vol-b").orElseThrow();
        assertEquals(Files.readSymbolicLink(Path.of("/proc/self/fd/" + fdB)),
                Files.readSymbolicLink(Path.of("/proc/self/fd/" + back.get(0))), "the second hold replaced the first");
        back.forEach(Native.LIBC::close);
        Native.LIBC.close(fdA);
        Native.LIBC.close(fdB);

        IOException noFd = assertThrows(IOException.class, () -> client.hold("vol-c", List.of(999999)));
        assertTrue(noFd.getMessage().contains("refused HOLD vol-c") && noFd.getMessage().contains("pidfd_getfd"),
                noFd.getMessage());
        assertEquals(List.of("vol-b"), client.list(), "a refused hold holds nothing");
        assertEquals("unknown request 'FETCH'",
                assertThrows(IOException.class, () -> keeper.handle("FETCH vol-a")).getMessage());
        assertEquals("GIVE needs exactly one name", assertThrows(IOException.class, () -> keeper.handle("GIVE")).getMessage());
    }
}
