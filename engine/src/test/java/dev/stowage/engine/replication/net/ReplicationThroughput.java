package dev.stowage.engine.replication.net;

import dev.stowage.engine.storage.FileStoragePool;
import io.netty.channel.EventLoopGroup;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;

/**
 * Not a test: a quick throughput check of the replication path over loopback into a
 * FileStoragePool under /tmp. Args: [seconds per phase, default 10].
 * 4 KiB random writes at QD32, then 1 MiB sequential writes at QD4; prints ops/s and MB/s. Then
 * 4 KiB random overwrite + flush pairs at QD1 in 16 MiB, as a replica sees an fsync-heavy application; prints the
 * pair's mean and median round trip (the flush's own device flush included).
 */
public final class ReplicationThroughput {
    private static final long VOLUME = 2L << 30;

    public static void main(String[] args) throws Exception {
        int seconds = args.length > 0 ? Integer.parseInt(args[0]) : 10;
        Path dir = Files.createTempDirectory(Path.of("/tmp"), "stowage-repl-bench");
        EventLoopGroup group = NettyTransport.newEventLoopGroup(1, "bench-client");
        try (FileStoragePool pool = FileStoragePool.open(dir.resolve("pool"))) {
            pool.create("bench", VOLUME);
            try (ReplicaServer server = ReplicaServer.start(
                    new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), pool, dir.resolve("repl"))) {
                ReplicaClient client = ReplicaClient.connect(server.localAddress(), group).get(10, TimeUnit.SECONDS);
                RemoteReplica r = client.openAsync("bench", 1).get(10, TimeUnit.SECONDS);
                run("4KiB random write QD32", r, 4096, 32, seconds, true);
                run("1MiB sequential write QD4", r, 1 << 20, 4, seconds, false);
                writeAndFlush(r, seconds);
                client.close();
            }
        } finally {
            group.shutdownGracefully(0, 5, TimeUnit.SECONDS).syncUninterruptibly();
            try (Stream<Path> s = Files.walk(dir)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> {
                    try {
                        Files.delete(p);
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                });
            }
        }
    }

    private static void run(String name, RemoteReplica r, int size, int depth, int seconds, boolean random)
            throws Exception {
        ByteBuffer data = ByteBuffer.allocateDirect(size);
        byte[] b = new byte[size];
        ThreadLocalRandom.current().nextBytes(b);
        data.put(b).flip();
        Semaphore slots = new Semaphore(depth);
        AtomicLong done = new AtomicLong();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        long blocks = VOLUME / size;
        long seq = 0;
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        long start = System.nanoTime();
        while (System.nanoTime() < end && failed.get() == null) {
            slots.acquire();
            long block = random ? ThreadLocalRandom.current().nextLong(blocks) : seq++ % blocks;
            CompletableFuture<Void> f = r.writeAsync(block * size, data, (1L << 40) | seq);
            f.whenComplete((v, t) -> {
                if (t != null) {
                    failed.compareAndSet(null, t);
                } else {
                    done.incrementAndGet();
                }
                slots.release();
            });
        }
        slots.acquire(depth);
        double secs = (System.nanoTime() - start) / 1e9;
        r.flushAsync().get(60, TimeUnit.SECONDS);
        if (failed.get() != null) {
            throw new IllegalStateException(name + " failed", failed.get());
        }
        double ops = done.get() / secs;
        System.out.printf("%s: %.0f ops/s, %.1f MB/s (%d writes in %.1f s)%n",
                name, ops, ops * size / 1e6, done.get(), secs);
    }

    private static void writeAndFlush(RemoteReplica r, int seconds) throws Exception {
        ByteBuffer data = ByteBuffer.allocateDirect(4096);
        byte[] b = new byte[4096];
        ThreadLocalRandom.current().nextBytes(b);
        data.put(b).flip();
        // Overwrites of blocks written before, as in fio's jobs on a prefilled file: a region's first
        // write since it settled also pays a durable mark, which is not what this phase measures.
        long blocks = 4096;
        for (long i = 0; i < blocks; i++) {
            r.writeAsync(i * 4096, data, (2L << 40) | (i + 1)).get(60, TimeUnit.SECONDS);
        }
        r.flushAsync().get(60, TimeUnit.SECONDS);
        long[] micros = new long[1 << 20];
        int n = 0;
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < end && n < micros.length) {
            long t0 = System.nanoTime();
            r.writeAsync(ThreadLocalRandom.current().nextLong(blocks) * 4096, data, (2L << 40) | (blocks + n + 1))
                    .get(60, TimeUnit.SECONDS);
            r.flushAsync().get(60, TimeUnit.SECONDS);
            micros[n++] = (System.nanoTime() - t0) / 1000;
        }
        long[] sorted = java.util.Arrays.copyOf(micros, n);
        java.util.Arrays.sort(sorted);
        System.out.printf("4KiB random write + flush QD1: mean %.0f us, p50 %d us, p99 %d us (%d pairs)%n",
                java.util.Arrays.stream(sorted).average().orElse(0), sorted[n / 2], sorted[(int) (n * 0.99)], n);
    }
}
