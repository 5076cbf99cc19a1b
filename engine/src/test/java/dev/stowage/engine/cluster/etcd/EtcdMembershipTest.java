package dev.stowage.engine.cluster.etcd;

import dev.stowage.engine.cluster.MembershipContract;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.MetadataStore.Lease;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

import java.io.IOException;
import java.util.List;
import java.util.UUID;

/**
 * {@link dev.stowage.engine.cluster.Membership} on a real etcd. Each member gets its own client (as
 * separate nodes would) on one key prefix per test; leases expire on etcd's own clock.
 */
@Tag("etcd")
class EtcdMembershipTest extends MembershipContract {
    private static EtcdProcess etcd;
    private String prefix;

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
        prefix = "/test-" + UUID.randomUUID();
        return EtcdMetadataStore.connect(List.of(etcd.endpoint()), prefix);
    }

    @Override
    protected MetadataStore peerStore(MetadataStore store) {
        return EtcdMetadataStore.connect(List.of(etcd.endpoint()), prefix);
    }

    @Override
    protected void stopKeepAlive(Lease lease) {
        ((EtcdMetadataStore.EtcdLease) lease).stopKeepAlive();
    }
}
