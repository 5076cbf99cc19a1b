package dev.stowage.engine.replication;

import dev.stowage.engine.replication.ReplicatedCoordinator.State;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/** One write sent to its replicas: its generation, its regions, where it went and the answers. */
final class Replication extends java.util.concurrent.atomic.AtomicInteger {
    final long generation;
    final long firstRegion;
    final long lastRegion;
    final List<ReplicaMember> targets;
    final List<CompletableFuture<Void>> answers;

    Replication(long generation, long firstRegion, long lastRegion, List<ReplicaMember> targets,
                List<CompletableFuture<Void>> answers) {
        super(answers.size());
        this.generation = generation;
        this.firstRegion = firstRegion;
        this.lastRegion = lastRegion;
        this.targets = targets;
        this.answers = answers;
    }

    /** Runs {@code then} once, on the thread that completes the last answer (maybe this one). */
    void whenAnswered(Runnable then) {
        for (CompletableFuture<Void> a : answers) {
            a.whenComplete((v, e) -> {
                if (decrementAndGet() == 0) {
                    then.run();
                }
            });
        }
    }

    /** Whether every answer was an acknowledgement, at least one of a HEALTHY replica: {@link #settle}'s quiet case. */
    boolean allAcknowledged() {
        boolean healthy = false;
        for (int i = 0; i < answers.size(); i++) {
            if (answers.get(i).isCompletedExceptionally()) {
                return false;
            }
            healthy |= targets.get(i).state == State.HEALTHY;
        }
        return healthy;
    }
}
