package dev.stowage.engine.replication;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link ReplicatedCoordinator#writeAsync}: a write whose caller does not wait for the replicas
 * keeps every promise {@link ReplicatedCoordinator#write} keeps (acknowledged after every healthy
 * replica, a failed replica on record first, copies and quiesces never overlapping it).
 */
@Timeout(60)
class BackgroundWriteTest extends ReplicatedCoordinatorHarness {

    /** What a background write's completion saw when it ran. */
    record Completion(IOException failure, String thread, List<String> eventsThen) {}

    CompletableFuture<Completion> writeInBackground(ReplicatedCoordinator c, long offset, byte[] data) {
        CompletableFuture<Completion> done = new CompletableFuture<>();
        c.writeAsync(offset, ByteBuffer.wrap(data), failure -> done.complete(
                new Completion(failure, Thread.currentThread().getName(), List.copyOf(health.events))));
        return done;
    }

    @Test
    void aBackgroundWriteCompletesAfterTheLastAnswerWithAFailedReplicaAlreadyOnRecord() throws Exception {
        Map<String, Gate> gates = new LinkedHashMap<>();
        ReplicatedCoordinator c = gatedCoordinator(1, gates);
        assertTrue(c.writesInBackground());
        gates.get("n2").mode = Gate.Mode.HOLD;
        byte[] data = pattern(4096, 11);
        CompletableFuture<Completion> done = writeInBackground(c, 8192, data);
        awaitLanded(nodes.get(0), 8192, data);
        awaitLanded(nodes.get(2), 8192, data);
        Thread.sleep(200);
        assertFalse(done.isDone(), "acknowledged while a healthy replica had not answered");

        gates.get("n2").release(); // n2's answer: a failure
        Completion completion = done.get(10, TimeUnit.SECONDS);
        assertNull(completion.failure(), "n1 and n3 acknowledged it");
        assertEquals(List.of("STALE n2"), completion.eventsThen(), "n2 must be on record as STALE before the acknowledgement");
        assertTrue(completion.thread().startsWith("write-settle"),
                "recording a replica STALE blocks, so it must not run on an event loop: " + completion.thread());

        gates.get("n2").mode = Gate.Mode.PASS;
        Completion quiet = writeInBackground(c, 0, pattern(4096, 12)).get(10, TimeUnit.SECONDS);
        assertNull(quiet.failure());
        assertFalse(quiet.thread().startsWith("write-settle"), "a write every replica acknowledged completes where the last answer arrived");
    }

    @Test
    void aBackgroundWriteThatEveryReplicaFailsFailsWithNoneMarkedAndIsRepairedBeforeTheNextWrite() throws Exception {
        Map<String, Gate> gates = new LinkedHashMap<>();
        ReplicatedCoordinator c = gatedCoordinator(1, gates);
        write(c, 0, pattern(4096, 20));
        gates.get("n1").mode = Gate.Mode.LOSE_ANSWER; // landed on n1, the answer lost
        gates.get("n2").mode = Gate.Mode.REFUSE;
        gates.get("n3").mode = Gate.Mode.REFUSE;
        Completion failed = writeInBackground(c, 0, pattern(4096, 21)).get(10, TimeUnit.SECONDS);
        assertNotNull(failed.failure(), "no replica acknowledged the write");
        assertEquals(List.of(), failed.eventsThen(), "nothing was acknowledged, so no replica is marked");

        gates.values().forEach(g -> g.mode = Gate.Mode.PASS);
        assertNull(writeInBackground(c, REGION, pattern(4096, 22)).get(10, TimeUnit.SECONDS).failure());
        c.flush();
        assertReplicasAgree(0, REGION); // the failed write's region was rewritten alike first
    }

    @Test
    void aQuiesceWaitsForTheBackgroundWritesInFlight() throws Exception {
        Map<String, Gate> gates = new LinkedHashMap<>();
        ReplicatedCoordinator c = gatedCoordinator(1, gates);
        gates.get("n3").mode = Gate.Mode.HOLD;
        CompletableFuture<Completion> done = writeInBackground(c, 3L * REGION, pattern(4096, 30));
        CompletableFuture<Boolean> sawTheWriteDone = CompletableFuture.supplyAsync(() -> {
            boolean[] seen = new boolean[1];
            try {
                c.whileQuiesced(() -> seen[0] = done.isDone());
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
            return seen[0];
        });
        Thread.sleep(300);
        assertFalse(sawTheWriteDone.isDone(), "quiesced with a write in flight");
        gates.get("n3").release();
        assertTrue(sawTheWriteDone.get(10, TimeUnit.SECONDS), "the quiesce ran before the write completed");
        assertNull(done.get().failure());
    }
}
