package dev.stowage.engine.frontend.fuse;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fd keeper: a small process of its own that holds copies of the /dev/fuse fds of every FUSE
 * connection a node serves, so that a connection outlives a crash or restart of the node.
 *
 * <p>Why: a FUSE connection ends when its last /dev/fuse fd closes, and every request a dead
 * server had read ends with an error. A volume's pods then see I/O errors and a dead file system
 * until they are restarted. While the keeper holds the fds, the connection stays, requests wait in
 * the kernel, and the restarted node takes the fds back ({@link FuseFdKeeperClient#take}), asks
 * the kernel to send the unanswered requests again (FUSE_NOTIFY_RESEND) and goes on serving the
 * same mount and loop device: the pods see a pause.
 *
 * <p>Protocol: one request line per connection on a Unix socket (mode 0600), one reply line.
 * Copies are made with pidfd_getfd(2), so no fd travels over the socket:
 * <pre>
 *   HOLD name pid fd...   copy these fds of process pid (replacing what is held for name) -> OK n
 *   GIVE name             -> FDS keeperPid fd...  (the keeper's own numbers, for pidfd_getfd) | NONE
 *   DROP name             close what is held for name -> OK
 *   LIST                  -> HELD name...
 * </pre>
 * Any failure is answered {@code ERR reason}. Names are FUSE mount point file names (no spaces).
 *
 * <p>Orphans: while no node serves a held connection, its pods' I/O waits, without a time limit of
 * the kernel's. So the keeper gives up on a connection whose holding process has been gone for
 * {@code orphanTimeout} without a new HOLD (a node that never comes back, a host taken out of
 * service): it closes the fds, the connection ends, and the waiting I/O fails instead of hanging.
 * A holder is named by its pid and its start time, so a later process that got the same pid does
 * not count as the node.
 *
 * <p>Threading: one thread accepts and serves requests one at a time; requests are short, and a
 * client that has not sent its line within {@link #REQUEST_TIMEOUT} is cut off, so one that
 * connects and stays silent cannot stop the keeper from serving the nodes. A second thread looks
 * for orphans; both work under the keeper's lock.
 */
public final class FuseFdKeeper implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(FuseFdKeeper.class);
    static final int MAX_LINE = 4096;

    private final Path socket;
    private final ServerSocketChannel server;
    private final Map<String, List<Integer>> held = new TreeMap<>();
    /** The process each name's fds were copied from. */
    private final Map<String, Holder> holders = new TreeMap<>();
    private final java.time.Duration orphanTimeout;
    private final java.time.Duration requestTimeout;
    private final java.util.concurrent.ScheduledExecutorService orphanCheck;

    private FuseFdKeeper(Path socket, ServerSocketChannel server, java.time.Duration orphanTimeout,
            java.time.Duration requestTimeout) {
        this.socket = socket;
        this.server = server;
        this.orphanTimeout = orphanTimeout;
        this.requestTimeout = requestTimeout;
        this.orphanCheck = java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "fd-keeper-orphans");
            t.setDaemon(true);
            return t;
        });
        long period = Math.max(100, Math.min(5000, orphanTimeout.toMillis() / 4));
        orphanCheck.scheduleWithFixedDelay(this::dropOrphans, period, period, java.util.concurrent.TimeUnit.MILLISECONDS);
    }

    /** Default time a held connection may go without a live holding process: 10 minutes. */
    public static final java.time.Duration DEFAULT_ORPHAN_TIMEOUT = java.time.Duration.ofMinutes(10);

    /**
     * How long a client has to send its request line: well below the node's own wait for an
     * answer ({@link FuseFdKeeperClient#TIMEOUT_MILLIS}), so that a node queued behind a silent
     * client is still answered.
     */
    static final java.time.Duration REQUEST_TIMEOUT = java.time.Duration.ofSeconds(2);

    /** Binds the socket (replacing a stale one) and returns the keeper; {@link #serve} runs it. */
    public static FuseFdKeeper bind(Path socket, java.time.Duration orphanTimeout) throws IOException {
        return bind(socket, orphanTimeout, REQUEST_TIMEOUT);
    }

    static FuseFdKeeper bind(Path socket, java.time.Duration orphanTimeout, java.time.Duration requestTimeout)
            throws IOException {
        if (orphanTimeout.isNegative() || orphanTimeout.isZero()) {
            throw new IllegalArgumentException("orphan timeout must be positive, was " + orphanTimeout);
        }
        Files.createDirectories(socket.toAbsolutePath().getParent());
        Files.deleteIfExists(socket);
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            server.bind(UnixDomainSocketAddress.of(socket));
            Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-------"));
        } catch (IOException | RuntimeException e) {
            server.close();
            throw e;
        }
        log.info("FUSE fd keeper listening on {} (pid {}); a connection whose node is gone for {} s is given up",
                socket, ProcessHandle.current().pid(), orphanTimeout.toSeconds());
        return new FuseFdKeeper(socket, server, orphanTimeout, requestTimeout);
    }

    /** Serves requests until the keeper is closed. */
    public void serve() {
        while (server.isOpen()) {
            try (SocketChannel client = server.accept()) {
                String request = readLine(client, requestTimeout, "no request line");
                String reply;
                try {
                    reply = handle(request);
                } catch (IOException | RuntimeException e) {
                    reply = "ERR " + e.getMessage();
                    log.warn("fd keeper: '{}' failed: {}", request, e.getMessage());
                }
                client.write(ByteBuffer.wrap((reply + "\n").getBytes(StandardCharsets.UTF_8)));
            } catch (IOException e) {
                if (server.isOpen()) {
                    log.warn("fd keeper: a request failed: {}", e.toString());
                }
            }
        }
    }

    synchronized String handle(String request) throws IOException {
        String[] words = request.trim().split(" +");
        switch (words[0]) {
            case "HOLD" -> {
                if (words.length < 4) {
                    throw new IOException("HOLD needs a name, a pid and fds");
                }
                int pid = Integer.parseInt(words[2]);
                List<Integer> copies = Native.copyFds(pid, numbers(words, 3));
                closeAll(held.put(words[1], copies));
                holders.put(words[1], new Holder(pid, startOf(pid)));
                log.info("fd keeper: holding {} fds of {} for process {}", copies.size(), words[1], pid);
                return "OK " + copies.size();
            }
            case "GIVE" -> {
                List<Integer> fds = held.get(name(words));
                if (fds == null) {
                    return "NONE";
                }
                StringBuilder b = new StringBuilder("FDS ").append(ProcessHandle.current().pid());
                fds.forEach(fd -> b.append(' ').append(fd));
                return b.toString();
            }
            case "DROP" -> {
                List<Integer> fds = held.remove(name(words));
                holders.remove(words[1]);
                closeAll(fds);
                if (fds != null) {
                    log.info("fd keeper: dropped the fds of {}", words[1]);
                }
                return "OK";
            }
            case "LIST" -> {
                return ("HELD " + String.join(" ", held.keySet())).trim();
            }
            default -> throw new IOException("unknown request '" + words[0] + "'");
        }
    }

    /** Closes what is held for names whose holding process has been gone for the orphan timeout. */
    synchronized void dropOrphans() {
        long now = System.nanoTime();
        for (var it = holders.entrySet().iterator(); it.hasNext(); ) {
            var e = it.next();
            Holder holder = e.getValue();
            if (isRunning(holder.pid, holder.started)) {
                holder.goneSince = 0;
            } else if (holder.goneSince == 0) {
                holder.goneSince = now;
            } else if (now - holder.goneSince >= orphanTimeout.toNanos()) {
                closeAll(held.remove(e.getKey()));
                it.remove();
                log.warn("fd keeper: no node took back the FUSE connection of {} within {} s of process {} ending;"
                        + " closed it, so its waiting I/O fails", e.getKey(), orphanTimeout.toSeconds(), holder.pid);
            }
        }
    }

    /** A holding process, named by its pid and its start time, and since when it is seen gone (0: not). */
    private static final class Holder {
        final long pid;
        final java.time.Instant started;
        long goneSince;

        Holder(long pid, java.time.Instant started) {
            this.pid = pid;
            this.started = started;
        }
    }

    /** When process {@code pid} started, or null when that cannot be read (then its pid alone names it). */
    static java.time.Instant startOf(long pid) {
        return ProcessHandle.of(pid).flatMap(h -> h.info().startInstant()).orElse(null);
    }

    /**
     * Whether the process that started at {@code started} as {@code pid} still runs. The start time
     * tells it from a later process given the same pid: a node that died long ago must not keep its
     * pods' I/O hanging because its pid was reused.
     */
    static boolean isRunning(long pid, java.time.Instant started) {
        return ProcessHandle.of(pid).filter(ProcessHandle::isAlive)
                .map(h -> started == null || started.equals(h.info().startInstant().orElse(null)))
                .orElse(false);
    }

    /** The numbers in {@code words} from index {@code from} on. */
    static List<Integer> numbers(String[] words, int from) {
        List<Integer> numbers = new ArrayList<>();
        for (int i = from; i < words.length; i++) {
            numbers.add(Integer.parseInt(words[i]));
        }
        return numbers;
    }

    private static String name(String[] words) throws IOException {
        if (words.length != 2) {
            throw new IOException(words[0] + " needs exactly one name");
        }
        return words[1];
    }

    private static void closeAll(List<Integer> fds) {
        if (fds != null) {
            fds.forEach(Native.LIBC::close);
        }
    }

    /**
     * One line of the keeper's protocol from {@code channel}: up to a newline, the end of the
     * stream or {@link #MAX_LINE} bytes, whichever comes first, read within {@code timeout}; else
     * a SocketTimeoutException saying "{@code noLine} within N ms". Serves both ends: the keeper
     * reading a request, the node reading the answer. The channel is blocking again afterwards.
     */
    static String readLine(SocketChannel channel, java.time.Duration timeout, String noLine) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(MAX_LINE);
        channel.configureBlocking(false);
        try (java.nio.channels.Selector selector = java.nio.channels.Selector.open()) {
            channel.register(selector, java.nio.channels.SelectionKey.OP_READ);
            long deadline = System.nanoTime() + timeout.toNanos();
            while (buffer.hasRemaining()) {
                long left = (deadline - System.nanoTime()) / 1_000_000;
                if (left <= 0) {
                    throw new java.net.SocketTimeoutException(noLine + " within " + timeout.toMillis() + " ms");
                }
                if (selector.select(left) == 0) {
                    continue;
                }
                selector.selectedKeys().clear();
                if (channel.read(buffer) < 0) {
                    break;
                }
                if (buffer.position() > 0 && buffer.get(buffer.position() - 1) == '\n') {
                    break;
                }
            }
        }
        channel.configureBlocking(true); // closing the selector deregistered the channel
        return new String(buffer.array(), 0, buffer.position(), StandardCharsets.UTF_8).strip();
    }

    /** Stops serving and closes every held fd: the connections they kept end unless a node holds them. */
    @Override
    public synchronized void close() throws IOException {
        orphanCheck.shutdownNow();
        server.close();
        held.values().forEach(FuseFdKeeper::closeAll);
        held.clear();
        holders.clear();
        Files.deleteIfExists(socket);
    }
}
