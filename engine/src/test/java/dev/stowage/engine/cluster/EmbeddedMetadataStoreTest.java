package dev.stowage.engine.cluster;

import dev.stowage.engine.cluster.MetadataStore.Lease;
import dev.stowage.engine.cluster.MetadataStore.WatchEvent;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EmbeddedMetadataStoreTest extends MetadataStoreContract {
    @TempDir
    Path dir;

    /** The store's clock: only the test moves it. */
    private final AtomicLong nanos = new AtomicLong(1_000_000_000L);

    private EmbeddedMetadataStore.Options options() {
        return EmbeddedMetadataStore.Options.defaults().withNanoTicker(nanos::get);
    }

    @Override
    protected MetadataStore newStore() throws IOException {
        return EmbeddedMetadataStore.open(dir.resolve("meta"), options());
    }

    @Override
    protected void stopKeepAlive(Lease lease) {
        ((EmbeddedMetadataStore.EmbeddedLease) lease).stopKeepAlive();
    }

    @Override
    protected void advanceClock(Duration duration) {
        nanos.addAndGet(duration.toNanos());
    }

    private EmbeddedMetadataStore reopen() throws IOException {
        store.close();
        store = null;
        store = EmbeddedMetadataStore.open(dir.resolve("meta"), options());
        return (EmbeddedMetadataStore) store;
    }

    @Test
    void valuesAndRevisionsSurviveRestart() throws IOException {
        long a = store.put("a", bytes("1"), MetadataStore.ABSENT);
        long b = store.put("b", bytes("2"), MetadataStore.ABSENT);
        long a2 = store.put("a", bytes("3"), a);
        store.delete("b", b);
        long before = Futures.join(store.currentRevisionAsync());

        reopen();

        assertEquals(before, Futures.join(store.currentRevisionAsync()));
        var entry = store.get("a").orElseThrow();
        assertArrayEquals(bytes("3"), entry.value());
        assertEquals(a, entry.createRevision());
        assertEquals(a2, entry.modRevision());
        assertEquals(Optional.empty(), store.get("b"));
        assertTrue(store.put("c", bytes("4"), MetadataStore.ABSENT) > before);
    }

    @Test
    void tornLogTailIsIgnoredAndTruncated() throws IOException {
        store.put("a", bytes("1"), MetadataStore.ABSENT);
        long last = store.put("b", bytes("2"), MetadataStore.ABSENT);
        store.close();
        store = null;
        Path logFile = dir.resolve("meta").resolve(EmbeddedMetadataStore.LOG_NAME);
        long intact = Files.size(logFile);
        assertTrue(intact > 0, "the log holds the two puts");
        // A crash in the middle of an append: a header promising 100 bytes, then only 10 of them.
        try (FileChannel channel = FileChannel.open(logFile, StandardOpenOption.WRITE, StandardOpenOption.APPEND)) {
            channel.write(ByteBuffer.allocate(18).putInt(100).putInt(12345).put(new byte[] {1, 2, 3}).position(18).flip());
        }

        store = EmbeddedMetadataStore.open(dir.resolve("meta"), options());

        assertEquals(last, Futures.join(store.currentRevisionAsync()));
        assertArrayEquals(bytes("2"), store.get("b").orElseThrow().value());
        long c = store.put("c", bytes("3"), MetadataStore.ABSENT);
        assertEquals(last + 1, c);
        reopen();
        assertEquals(List.of("a", "b", "c"), store.list("").stream().map(MetadataStore.Versioned::key).toList());
    }

    @Test
    void zeroFilledLogTailIsIgnored() throws IOException {
        long last = store.put("a", bytes("1"), MetadataStore.ABSENT);
        store.close();
        store = null;
        Path logFile = dir.resolve("meta").resolve(EmbeddedMetadataStore.LOG_NAME);
        try (FileChannel channel = FileChannel.open(logFile, StandardOpenOption.WRITE, StandardOpenOption.APPEND)) {
            channel.write(ByteBuffer.allocate(4096));
        }
        store = EmbeddedMetadataStore.open(dir.resolve("meta"), options());
        assertEquals(last, Futures.join(store.currentRevisionAsync()));
    }

    @Test
    void corruptRecordBeforeIntactOnesRefusesToOpen() throws IOException {
        store.put("a", bytes("first"), MetadataStore.ABSENT);
        store.put("b", bytes("second"), MetadataStore.ABSENT);
        store.close();
        store = null;
        Path logFile = dir.resolve("meta").resolve(EmbeddedMetadataStore.LOG_NAME);
        try (FileChannel channel = FileChannel.open(logFile, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer one = ByteBuffer.allocate(1);
            channel.read(one, 12);
            one.put(0, (byte) (one.get(0) ^ 0xFF)).rewind();
            channel.write(one, 12);
        }
        IOException e = assertThrows(IOException.class,
                () -> EmbeddedMetadataStore.open(dir.resolve("meta"), options()));
        assertTrue(e.getMessage().contains("corrupt at offset 0"), e.getMessage());
    }

    @Test
    void leaseKeysAreGoneAfterReopen() throws IOException {
        Lease lease = Futures.join(store.grantLeaseAsync(Duration.ofMinutes(5)));
        Futures.join(store.putAsync("node/1", bytes("alive"), MetadataStore.ABSENT, lease.id()));
        store.put("volume/1", bytes("spec"), MetadataStore.ABSENT);
        long before = Futures.join(store.currentRevisionAsync());

        reopen();

        assertEquals(Optional.empty(), store.get("node/1"));
        assertTrue(store.get("volume/1").isPresent());
        assertTrue(Futures.join(store.currentRevisionAsync()) > before, "the deletion advanced the revision");
        lease.close(); // a lease of the closed store: harmless
    }

    @Test
    void secondOpenOfTheSameDirectoryIsRefused() {
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> EmbeddedMetadataStore.open(dir.resolve("meta"), options()));
        assertTrue(e.getMessage().contains("already open"), e.getMessage());
        // the first store still works
        store.put("k", bytes("v"), MetadataStore.ABSENT);
    }

    @Test
    void compactionBoundsTheLogAndKeepsData() throws IOException {
        store.close();
        store = EmbeddedMetadataStore.open(dir.resolve("meta"), options().withCompactLogBytes(2048));
        long rev = MetadataStore.ABSENT;
        for (int i = 0; i < 200; i++) {
            rev = store.put("counter", bytes(Integer.toString(i)), rev);
            store.put("k/" + (i % 10), bytes("v" + i), MetadataStore.ANY);
        }
        Path logFile = dir.resolve("meta").resolve(EmbeddedMetadataStore.LOG_NAME);
        assertTrue(Files.size(logFile) < 2048, "log compacted: " + Files.size(logFile));
        long before = Futures.join(store.currentRevisionAsync());
        reopen();
        assertEquals(before, Futures.join(store.currentRevisionAsync()));
        assertArrayEquals(bytes("199"), store.get("counter").orElseThrow().value());
        assertEquals(rev, store.get("counter").orElseThrow().modRevision());
        assertEquals(11, store.list("").size());
    }

    @Test
    void watchFromBeforeOpenIsRefusedNamingTheCompactedRevision() throws Exception {
        store.put("a", bytes("1"), MetadataStore.ABSENT);
        long opened = store.put("b", bytes("2"), MetadataStore.ABSENT);
        reopen();
        CompactedRevisionException e = assertThrows(CompactedRevisionException.class,
                () -> store.watch("", 1, event -> {}));
        assertEquals(1, e.requestedRevision());
        assertEquals(opened, e.compactedRevision());
        // from the first revision after open it works
        List<WatchEvent> events = new CopyOnWriteArrayList<>();
        long next = store.put("c", bytes("3"), MetadataStore.ABSENT);
        try (AutoCloseable watch = store.watch("", opened + 1, events::add)) {
            Await.until(DEADLINE, "the replayed event", () -> events.size() == 1);
            assertEquals(next, events.get(0).modRevision());
        }
    }

    @Test
    void watchHistoryIsBounded() throws IOException {
        store.close();
        store = EmbeddedMetadataStore.open(dir.resolve("meta"), options().withWatchHistoryEvents(3));
        long first = store.put("k", bytes("0"), MetadataStore.ANY);
        for (int i = 1; i < 5; i++) {
            store.put("k", bytes(Integer.toString(i)), MetadataStore.ANY);
        }
        CompactedRevisionException e = assertThrows(CompactedRevisionException.class,
                () -> store.watch("k", first, event -> {}));
        assertEquals(first + 1, e.compactedRevision());
    }

    @Test
    void closedStoreRejectsChanges() {
        store.close();
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> store.put("k", bytes("v"), MetadataStore.ANY));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
        store = null;
    }
}
