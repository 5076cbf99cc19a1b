package dev.stowage.engine.frontend.fuse;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * How a node talks to its {@link FuseFdKeeper}: one short connection per request, answered within
 * {@link #TIMEOUT_MILLIS} (a stopped or hung keeper must not hold up an attach). Thread-safe (no
 * state besides the socket path). Failures are IOExceptions naming the request.
 */
final class FuseFdKeeperClient {
    static final long TIMEOUT_MILLIS = 5000;
    private final Path socket;

    FuseFdKeeperClient(Path socket) {
        this.socket = socket;
    }

    Path socket() {
        return socket;
    }

    /** Has the keeper copy {@code fds} of this process for {@code name}, replacing what it held. */
    void hold(String name, List<Integer> fds) throws IOException {
        StringBuilder b = new StringBuilder("HOLD ").append(name).append(' ').append(ProcessHandle.current().pid());
        fds.forEach(fd -> b.append(' ').append(fd));
        expectOk(request(b.toString()), "HOLD " + name);
    }

    /**
     * Copies into this process the fds the keeper holds for {@code name}, in the order they were
     * held; empty if it holds none. The keeper keeps its own copies until {@link #drop}.
     */
    Optional<List<Integer>> take(String name) throws IOException {
        String reply = request("GIVE " + name);
        if (reply.equals("NONE")) {
            return Optional.empty();
        }
        String[] words = reply.split(" ");
        if (!words[0].equals("FDS") || words.length < 3) {
            throw new IOException("fd keeper on " + socket + " answered GIVE " + name + " with '" + reply + "'");
        }
        return Optional.of(Native.copyFds(Integer.parseInt(words[1]), FuseFdKeeper.numbers(words, 2)));
    }

    /** Has the keeper close what it holds for {@code name}. */
    void drop(String name) throws IOException {
        expectOk(request("DROP " + name), "DROP " + name);
    }

    /** The names the keeper holds fds for. */
    List<String> list() throws IOException {
        String reply = request("LIST");
        if (!reply.startsWith("HELD")) {
            throw new IOException("fd keeper on " + socket + " answered LIST with '" + reply + "'");
        }
        String rest = reply.substring(4).trim();
        return rest.isEmpty() ? List.of() : List.of(rest.split(" "));
    }

    private void expectOk(String reply, String what) throws IOException {
        if (!reply.startsWith("OK")) {
            throw new IOException("fd keeper on " + socket + " refused " + what + ": " + reply);
        }
    }

    private String request(String line) throws IOException {
        try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            channel.connect(UnixDomainSocketAddress.of(socket)); // a local socket: at once, or refused
            channel.write(ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8)));
            channel.shutdownOutput();
            return FuseFdKeeper.readLine(channel, java.time.Duration.ofMillis(TIMEOUT_MILLIS), "no answer");
        } catch (IOException e) {
            throw new IOException("fd keeper on " + socket + ": " + line.split(" ")[0] + " failed: " + e.getMessage(), e);
        }
    }
}
