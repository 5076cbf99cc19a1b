package dev.stowage.engine.cluster;

import dev.stowage.engine.cluster.MetadataStore.Lease;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

/** {@link Membership} on the embedded store, whose lease clock the test drives. */
class EmbeddedMembershipTest extends MembershipContract {
    @TempDir
    Path dir;

    private final AtomicLong nanos = new AtomicLong(1_000_000_000L);

    @Override
    protected MetadataStore newStore() throws IOException {
        return EmbeddedMetadataStore.open(dir.resolve("meta"),
                EmbeddedMetadataStore.Options.defaults().withNanoTicker(nanos::get));
    }

    @Override
    protected void stopKeepAlive(Lease lease) {
        ((EmbeddedMetadataStore.EmbeddedLease) lease).stopKeepAlive();
    }

    @Override
    protected void advanceClock(Duration duration) {
        nanos.addAndGet(duration.toNanos());
    }
}
