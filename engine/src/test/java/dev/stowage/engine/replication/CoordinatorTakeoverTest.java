package dev.stowage.engine.replication;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.replication.ReplicatedCoordinator.State;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Writes in flight when a coordinator or a replica dies (docs/replication.md, "Takeover" and
 * "Power loss"): the next coordinator, or the resync of the replica that crashed, makes the
 * replicas agree again.
 */
class CoordinatorTakeoverTest extends ReplicatedCoordinatorHarness {
    @Test
    void aWriteThatReachedSomeReplicasWhenItsCoordinatorDiedIsMadeAlikeAtTakeover() throws Exception {
        Map<String, Gate> gates = new LinkedHashMap<>();
        ReplicatedCoordinator old = gatedCoordinator(1, gates);
        write(old, 0, pattern(8192, 30));
        write(old, 3L * REGION, pattern(REGION, 31));
        old.flush();
        write(old, 5L * REGION, pattern(4096, 32)); // completed everywhere, after the last flush

        gates.get("n1").mode = Gate.Mode.HOLD; // the write leaves for n2 and n3; then the node dies
        byte[] torn = pattern(4096, 33);
        java.util.concurrent.CompletableFuture<Void> abandoned = writeInFlight(old, 3L * REGION + 8192, torn);
        awaitLanded(nodes.get(1), 3L * REGION + 8192, torn);
        awaitLanded(nodes.get(2), 3L * REGION + 8192, torn);
        assertTrue(!abandoned.isDone(), "nothing acknowledged the write");
        assertTrue(!java.util.Arrays.equals(torn, nodes.get(0).read(3L * REGION + 8192, 4096)),
                "the replicas disagree before the takeover");

        ReplicatedCoordinator taker = coordinator(2);
        // Region 3, and region 5: n1 never heard that the write there completed (the next write,
        // held back, would have said so). Region 0 and 3's first write were below the watermark.
        assertEquals(2, taker.reconcileInDoubt());
        assertReplicasAgree(0, 8 * REGION);
        byte[] seen = read(taker, 3L * REGION + 8192, 4096);
        assertArrayEquals(seen, nodes.get(1).read(3L * REGION + 8192, 4096), "reads agree with every replica");
        assertEquals(0, taker.reconcileInDoubt(), "the rewrite and its flush left nothing in doubt");
        assertEquals(List.of(), health.events, "no replica failed");
    }

    @Test
    void aResyncCopiesARegionWhereTheReturningReplicaIsAheadOfItsSource() throws Exception {
        tornWrite(4L * REGION + 4096, 40, "n3"); // reaches n3 alone, which then goes away with the node
        ReplicatedCoordinator taker = takerWithout("n3");
        assertEquals(0, taker.reconcileInDoubt(), "the write never reached n1 or n2");
        // n3 returns. Its region 4 carries the torn write's generation, above n1's: "older on the
        // source" must not read as "nothing to copy".
        taker.resync(nodes.get(2).endpoint(2), 0);
        assertReplicasAgree(0, 8 * REGION);
    }

    @Test
    void aWriteLeftOnACrashedReplicaAloneIsCopiedOverByItsResync() throws Exception {
        // Region 2's generation is durable on every replica; then n1's own replica alone takes the
        // torn write, and n1 crashes.
        tornWrite(2L * REGION + 8192, 50, "n1");
        Node n1 = nodes.get(0);
        n1.crashAndRestart(); // the data is in the page cache, the write's region generation only in memory

        ReplicatedCoordinator taker = takerWithout("n1");
        assertEquals(0, taker.reconcileInDoubt());
        // n1's generation for region 2 equals n2's, yet n1 holds the torn write: the crash left the
        // region in doubt, and the resync copies it.
        assertEquals(REGION, taker.resync(n1.endpoint(2), 0));
        assertReplicasAgree(0, 8 * REGION);
    }

    @Test
    void aSettledRegionKeepsTheGenerationOfAWriteLeftOnItAloneThroughACrash() throws Exception {
        tornWrite(2L * REGION + 8192, 55, "n1"); // n1 alone takes it; its coordinator dies
        Node n1 = nodes.get(0);
        for (int i = 0; i < 3; i++) {
            n1.pool.settle(); // with nobody flushing, the settler clears the region's unsettled mark
        }
        n1.crashAndRestart();
        assertArrayEquals(new long[0], n1.pool.open(VOLUME).orElseThrow().regionsRecoveredAfterCrash(),
                "the region was settled before the crash: recovery does not name it");

        ReplicatedCoordinator taker = takerWithout("n1");
        taker.reconcileInDoubt();
        // The settle round persisted the torn write's generation before it cleared the mark: n1's
        // region 2 is ahead of the others, and the resync copies it.
        assertEquals(REGION, taker.resync(n1.endpoint(2), 0));
        assertReplicasAgree(0, 8 * REGION);
    }

    @Test
    void aWriteLeftOnAReplicaAloneSurvivesACleanRestartOfItsServerAsDoubt() throws Exception {
        tornWrite(7L * REGION + 4096, 57, "n1"); // n1 alone takes it; its coordinator dies
        Node n1 = nodes.get(0);
        n1.stop(); // a clean restart of n1's replica server (an upgrade, say) before the next attach
        n1.start();

        ReplicatedCoordinator taker = coordinator(2);
        assertEquals(1, taker.reconcileInDoubt(), "n1 kept region 7 in doubt across the restart");
        assertReplicasAgree(0, 8 * REGION);
    }

    @Test
    void aReplicaThatCrashedUnderALiveCoordinatorStillCopiesOnlyWhatItMissed() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        for (int r = 0; r < 6; r++) {
            write(c, (long) r * REGION, pattern(REGION, 70 + r));
        }
        c.flush();
        Node n3 = nodes.get(2);
        n3.crashAndRestart(); // six regions recently written: all taken as written by the recovery
        write(c, 9L * REGION, pattern(4096, 80)); // fails on n3, which is marked STALE
        c.flush();
        assertEquals(State.STALE, c.states().get("n3"));
        // The coordinator of the crash's epoch saw every write in flight fail on n3: the six
        // recovered regions are no doubt to it, only region 9 is missing.
        assertEquals(REGION, c.resync(n3.endpoint(1), 0));
        assertReplicasAgree(0, 10 * REGION);
    }

    @Test
    void aGenerationThatAPowerLossKeptWithoutItsDataDoesNotHideTheLostWrite() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        byte[] before = pattern(REGION, 90);
        write(c, 3L * REGION, before);
        c.flush();
        write(c, 3L * REGION + 8192, pattern(4096, 91));
        c.flush();
        // n3 loses power at the end of that flush: its generation page reached the disk (it rides
        // the data's device flush), the data page did not, so region 3 holds the block from before.
        Node n3 = nodes.get(2);
        n3.pool.open(VOLUME).orElseThrow().write(3L * REGION + 8192,
                ByteBuffer.wrap(java.util.Arrays.copyOfRange(before, 8192, 8192 + 4096)));
        n3.crashAndRestart(true);
        write(c, 9L * REGION, pattern(4096, 92)); // fails on n3, which is marked STALE
        c.flush();
        assertEquals(State.STALE, c.states().get("n3"));
        // Region 3's generation on n3 equals the others', but the recovery ran in a later boot: the
        // region is in doubt even to the crash's own coordinator, and the resync copies it.
        assertEquals(2L * REGION, c.resync(n3.endpoint(1), 0), "region 3 and region 9");
        assertReplicasAgree(0, 10 * REGION);
    }

    @Test
    void aWriteThatFailedOnEveryReplicaIsMadeAlikeBeforeTheNextWrite() throws Exception {
        Map<String, Gate> gates = new LinkedHashMap<>();
        ReplicatedCoordinator c = gatedCoordinator(1, gates);
        write(c, 6L * REGION, pattern(4096, 60));
        c.flush();
        gates.get("n1").mode = Gate.Mode.LOSE_ANSWER; // lands on n1, but its answer is lost
        gates.get("n2").mode = Gate.Mode.REFUSE;
        gates.get("n3").mode = Gate.Mode.REFUSE;
        byte[] failed = pattern(4096, 61);
        assertThrows(IOException.class, () -> write(c, 6L * REGION + 4096, failed));
        assertEquals(List.of(), health.events, "a write that failed everywhere marks nobody stale");
        assertArrayEquals(failed, nodes.get(0).read(6L * REGION + 4096, 4096), "it landed on n1 all the same");

        gates.values().forEach(g -> g.mode = Gate.Mode.PASS);
        write(c, 0, pattern(4096, 62)); // any write: the failed one's region is made alike first
        assertReplicasAgree(0, 8 * REGION);
        c.flush();
        assertEquals(0, coordinator(2).reconcileInDoubt(), "nothing is left in doubt for a later coordinator");
    }
}
