package dev.stowage.engine.cluster.etcd;

import dev.stowage.engine.cluster.Await;
import dev.stowage.engine.cluster.Membership;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.NodeDescriptor;
import dev.stowage.engine.cluster.NodeProtos;
import io.etcd.jetcd.Client;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A watch that cannot resume: the node loses etcd, and history it missed is compacted meanwhile,
 * so resuming from the revision after its last event (what jetcd does by itself) would be refused
 * when etcd comes back. The membership view must not freeze there (a frozen view would never see a
 * dead node leave, so no failover would ever start): it lists the members again and tells its
 * listeners what it missed. Before this was handled, the view stayed frozen and this test timed out.
 *
 * <p>The loss is made by restarting this test's own etcd on a second client port only; a second
 * client on that port changes the membership and compacts while the watcher's port is gone.
 */
@Tag("etcd")
class EtcdWatchRecoveryTest {
    private static final Duration DEADLINE = Duration.ofSeconds(60);
    private static final Duration TTL = Duration.ofSeconds(60);

    private EtcdProcess etcd;

    @BeforeEach
    void startEtcd() throws IOException {
        etcd = EtcdProcess.start();
    }

    @AfterEach
    void stopEtcd() {
        if (etcd != null) {
            etcd.close();
        }
    }

    private static NodeDescriptor node(String id) {
        return NodeDescriptor.storage(id, "127.0.0.1:7000", Map.of(), 100L << 30, 50L << 30);
    }

    @Test
    void membershipListsAgainWhenItsWatchCannotResume() throws Exception {
        URI first = etcd.endpoint();
        URI second = URI.create("http://127.0.0.1:" + EtcdProcess.freePort());
        String prefix = "/test-" + UUID.randomUUID();
        List<String> heard = new CopyOnWriteArrayList<>();
        try (MetadataStore watcherStore = EtcdMetadataStore.connect(List.of(first), prefix);
             Membership watcher = Membership.join(watcherStore, node("watcher"), TTL)) {
            // A bare record, no Membership behind it: nothing registers it again once it is gone.
            watcherStore.put(Membership.PREFIX + "leaver", NodeProtos.encode(node("leaver")), MetadataStore.ABSENT);
            watcher.addListener(new Membership.Listener() {
                @Override
                public void onJoin(NodeDescriptor n) { heard.add("join " + n.id()); }

                @Override
                public void onLeave(NodeDescriptor n) { heard.add("leave " + n.id()); }
            });
            Await.until(DEADLINE, "the watcher to see the leaver", () -> watcher.isAlive("leaver"));

            etcd.restartOn(List.of(second)); // the watcher's address is gone
            try (MetadataStore other = EtcdMetadataStore.connect(List.of(second), prefix);
                 Client admin = Client.builder().endpoints(second).build()) {
                other.delete(Membership.PREFIX + "leaver", MetadataStore.ANY); // as if its node's lease expired
                Membership joiner = Membership.join(other, node("joiner"), TTL);
                long now = other.currentRevisionAsync().get(10, TimeUnit.SECONDS);
                admin.getKVClient().compact(now).get(10, TimeUnit.SECONDS);
                try {
                    etcd.restartOn(List.of(first, second)); // the watcher reconnects; its resume is compacted
                    Await.until(DEADLINE, "the watcher to list the members again",
                            () -> watcher.liveNodes().stream().map(NodeDescriptor::id).toList()
                                    .equals(List.of("joiner", "watcher")));
                    Await.until(DEADLINE, "the listener to hear what the watch missed",
                            () -> heard.contains("leave leaver") && heard.contains("join joiner"));
                    assertEquals(1, heard.stream().filter("join joiner"::equals).count(), heard.toString());

                } finally {
                    joiner.close();
                }
                Await.until(DEADLINE, "the new watch to deliver a later change", () -> heard.contains("leave joiner"));
                assertEquals(List.of("watcher"), watcher.liveNodes().stream().map(NodeDescriptor::id).toList());
            }
        }
    }
}
