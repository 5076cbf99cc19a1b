package dev.stowage.engine.cluster;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;

import java.util.List;
import java.util.Map;

/**
 * No placement satisfies a request: too few storage nodes are eligible (live, in an allowed zone,
 * not excluded, with enough free space). Carries {@link ErrorCode#RESOURCE_EXHAUSTED}, how many
 * nodes were needed, the eligible nodes found and why each other candidate was refused; the message
 * says all of it, e.g. {@code repl=3 needs 3 storage nodes with 10 GiB free in zones [a,b]; found 2:
 * n1 (zone a), n2 (zone b); not eligible: n3 (storage-less)}.
 */
public final class PlacementException extends StowageException {
    private final int needed;
    private final List<String> eligible;
    private final Map<String, String> refused;

    PlacementException(String message, int needed, List<String> eligible, Map<String, String> refused) {
        super(ErrorCode.RESOURCE_EXHAUSTED, message);
        this.needed = needed;
        this.eligible = List.copyOf(eligible);
        this.refused = Map.copyOf(refused);
    }

    /** How many (more) nodes the request needed. */
    public int needed() { return needed; }

    /** Ids of the eligible nodes found (fewer than {@link #needed()}), in id order. */
    public List<String> eligible() { return eligible; }

    /** Every other candidate's id and why it was refused (e.g. "storage-less", "zone c"). */
    public Map<String, String> refused() { return refused; }
}
