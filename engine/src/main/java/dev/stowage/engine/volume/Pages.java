package dev.stowage.engine.volume;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.Page;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.cluster.MetadataStore.Versioned;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * CSI-style pagination over records sorted by id: the token is the last id of the previous page, so
 * deleting that record does not break the walk, and a token that is no id of ours is ABORTED (as the
 * CSI spec asks for ListVolumes and ListSnapshots).
 */
final class Pages {
    private Pages() {}

    /** The page after {@code startingToken} of {@code sorted}, whose keys are {@code prefix} + id. */
    static <T> Page<T> page(List<Versioned> sorted, String prefix, Pattern idPattern, int maxEntries,
                             String startingToken, Function<Versioned, T> convert) {
        if (maxEntries < 0) {
            throw StowageException.invalid("max_entries", "must not be negative");
        }
        String after = null;
        if (startingToken != null && !startingToken.isEmpty()) {
            if (!idPattern.matcher(startingToken).matches()) {
                throw new StowageException(ErrorCode.ABORTED, "starting_token", "starting_token '"
                        + startingToken + "' was not issued by this plugin", null);
            }
            after = startingToken;
        }
        List<T> items = new ArrayList<>();
        String last = null;
        boolean more = false;
        for (Versioned v : sorted) {
            String id = v.key().substring(prefix.length());
            if (after != null && id.compareTo(after) <= 0) {
                continue;
            }
            if (maxEntries > 0 && items.size() == maxEntries) {
                more = true;
                break;
            }
            items.add(convert.apply(v));
            last = id;
        }
        return new Page<>(items, more ? last : "");
    }
}
