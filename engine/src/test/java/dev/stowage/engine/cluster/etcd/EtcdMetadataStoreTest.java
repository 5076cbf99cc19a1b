package dev.stowage.engine.cluster.etcd;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.cluster.Await;
import dev.stowage.engine.cluster.CompactedRevisionException;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.MetadataStore.Lease;
import dev.stowage.engine.cluster.MetadataStoreContract;
import io.etcd.jetcd.Client;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Tag("etcd")
class EtcdMetadataStoreTest extends MetadataStoreContract {
    private static EtcdProcess etcd;

    @BeforeAll
    static void startEtcd() throws IOException {
        etcd = EtcdProcess.start();
    }

    @AfterAll
    static void stopEtcd() {
        if (etcd != null) {
            etcd.close();
        }
    }

    @Override
    protected MetadataStore newStore() {
        return EtcdMetadataStore.connect(List.of(etcd.endpoint()), "/test-" + UUID.randomUUID() + "/");
    }

    @Override
    protected void stopKeepAlive(Lease lease) {
        ((EtcdMetadataStore.EtcdLease) lease).stopKeepAlive();
    }

    @Test
    void storesWithDifferentPrefixesDoNotSeeEachOther() {
        store.put("shared", bytes("mine"), MetadataStore.ABSENT);
        try (MetadataStore other = newStore()) {
            assertEquals(Optional.empty(), other.get("shared"));
            assertEquals(List.of(), other.list(""));
            other.put("shared", bytes("theirs"), MetadataStore.ABSENT);
        }
        assertEquals("mine", text(store.get("shared").orElseThrow().value()));
        assertEquals(1, store.list("").size());
    }

    @Test
    void watchFromCompactedRevisionIsRefused() throws Exception {
        long r1 = store.put("c/a", bytes("1"), MetadataStore.ABSENT);
        long r2 = store.put("c/a", bytes("2"), r1);
        try (Client admin = Client.builder().endpoints(etcd.endpoint()).build()) {
            admin.getKVClient().compact(r2).get(DEADLINE.toSeconds(), TimeUnit.SECONDS);
        }
        CompactedRevisionException e = assertThrows(CompactedRevisionException.class,
                () -> store.watch("c/", r1, event -> {}));
        assertEquals(r1, e.requestedRevision());
        List<MetadataStore.WatchEvent> events = new CopyOnWriteArrayList<>();
        try (AutoCloseable watch = store.watch("c/", r2, events::add)) {
            Await.until(DEADLINE, "the event at the compaction revision", () -> events.size() == 1);
            assertEquals(r2, events.get(0).modRevision());
        }
    }

    @Test
    void unreachableEtcdFailsAsUnavailable() throws IOException {
        int closedPort;
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closedPort = socket.getLocalPort();
        }
        StowageException e = assertThrows(StowageException.class, () -> EtcdMetadataStore.connect(
                List.of(URI.create("http://127.0.0.1:" + closedPort)), "/x/", Duration.ofSeconds(2)));
        assertEquals(ErrorCode.UNAVAILABLE, e.code());
        assertTrue(e.getMessage().contains("127.0.0.1:" + closedPort), e.getMessage());
    }
}
