package dev.stowage.engine.replication;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.junit.jupiter.api.Test;

class CompletionWatermarkTest {
    private static final long E = 7L << 40;

    @Test
    void theWatermarkStopsBelowTheLowestWriteNotEnded() {
        CompletionWatermark w = new CompletionWatermark(7);
        assertEquals(E, w.current(), "nothing ended yet");
        long g1 = w.begin();
        long g2 = w.begin();
        long g3 = w.begin();
        assertEquals(E | 1, g1);
        w.end(g3);
        w.end(g2);
        assertEquals(E, w.current(), "g1 is still in flight");
        w.end(g1);
        assertEquals(g3, w.current());
    }

    @Test
    void aWriteLeftInFlightWhileTheRingWrapsHoldsTheWatermarkDown() {
        CompletionWatermark w = new CompletionWatermark(7);
        long stuck = w.begin();
        long last = 0;
        for (int i = 0; i < 3 * (1 << 14); i++) { // its slot is reused by later writes that end
            last = w.begin();
            w.end(last);
        }
        assertEquals(E, w.current(), "never past a write that has not ended");
        w.end(stuck);
        assertEquals(last, w.current(), "and all the way up once it ended: nothing recorded was lost");
    }

    @Test
    void concurrentWritersNeverSeeAWatermarkAtOrAboveAWriteInFlight() throws Exception {
        CompletionWatermark w = new CompletionWatermark(7);
        ConcurrentLinkedQueue<String> violations = new ConcurrentLinkedQueue<>();
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 8; t++) {
            Thread th = new Thread(() -> {
                for (int i = 0; i < 20_000; i++) {
                    long g = w.begin();
                    long seen = w.current();
                    if (seen >= g) {
                        violations.add("watermark " + seen + " while " + g + " was in flight");
                    }
                    w.end(g);
                }
            });
            threads.add(th);
            th.start();
        }
        for (Thread th : threads) {
            th.join();
        }
        assertEquals(List.of(), List.copyOf(violations));
        assertEquals(E | 160_000, w.current(), "every write ended");
    }
}
