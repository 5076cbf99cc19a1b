package dev.stowage.cli;

import java.math.BigDecimal;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Sizes as operators type and read them. Binary units (KiB, MiB, GiB, TiB, PiB, also written Ki, Mi...)
 * are powers of 1024; decimal ones (K, M, G, T, P, also KB, MB...) powers of 1000, so {@code 1G} is
 * 10^9 bytes; a bare number is bytes. Units are case-insensitive; fractions are allowed when they come
 * to whole bytes ({@code 1.5GiB}). Stateless and thread-safe.
 */
public final class Sizes {
    private static final Pattern SIZE = Pattern.compile("([0-9]+(?:\\.[0-9]+)?)\\s*([A-Za-z]*)");
    private static final Map<String, Long> UNITS = Map.ofEntries(
            Map.entry("", 1L), Map.entry("b", 1L),
            Map.entry("k", 1_000L), Map.entry("kb", 1_000L),
            Map.entry("m", 1_000_000L), Map.entry("mb", 1_000_000L),
            Map.entry("g", 1_000_000_000L), Map.entry("gb", 1_000_000_000L),
            Map.entry("t", 1_000_000_000_000L), Map.entry("tb", 1_000_000_000_000L),
            Map.entry("p", 1_000_000_000_000_000L), Map.entry("pb", 1_000_000_000_000_000L),
            Map.entry("ki", 1L << 10), Map.entry("kib", 1L << 10),
            Map.entry("mi", 1L << 20), Map.entry("mib", 1L << 20),
            Map.entry("gi", 1L << 30), Map.entry("gib", 1L << 30),
            Map.entry("ti", 1L << 40), Map.entry("tib", 1L << 40),
            Map.entry("pi", 1L << 50), Map.entry("pib", 1L << 50));
    private static final String[] BINARY = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

    private Sizes() {}

    /**
     * Parses {@code text}, the value of {@code flag}, into a positive number of bytes. A bad value is a
     * {@link UsageException} with one line naming the flag.
     */
    public static long parse(String flag, String text) {
        Matcher m = SIZE.matcher(text == null ? "" : text.trim());
        Long unit = m.matches() ? UNITS.get(m.group(2).toLowerCase(Locale.ROOT)) : null;
        if (unit == null) {
            throw new UsageException(flag + " '" + text + "' is not a size; use bytes or a number with a unit,"
                    + " e.g. 512MiB, 10GiB, 1TiB or 1G (10^9 bytes)");
        }
        BigDecimal bytes = new BigDecimal(m.group(1)).multiply(BigDecimal.valueOf(unit));
        if (bytes.signum() == 0) {
            throw new UsageException(flag + " '" + text + "' must be larger than zero");
        }
        if (bytes.stripTrailingZeros().scale() > 0) {
            throw new UsageException(flag + " '" + text + "' is not a whole number of bytes");
        }
        if (bytes.compareTo(BigDecimal.valueOf(Long.MAX_VALUE)) > 0) {
            throw new UsageException(flag + " '" + text + "' is too large");
        }
        return bytes.longValueExact();
    }

    /**
     * {@code bytes} in the largest binary unit it reaches: "10GiB", "1.5GiB", "512B". A negative value (a
     * uint64 past Long.MAX_VALUE) is shown as unsigned bytes.
     */
    public static String format(long bytes) {
        if (bytes < 1024) {
            return Long.toUnsignedString(bytes) + "B";
        }
        int unit = 0;
        long scale = 1024;
        while (unit + 1 < BINARY.length && scale << 10 > 0 && bytes >= scale << 10) {
            scale <<= 10;
            unit++;
        }
        if (bytes % scale == 0) {
            return bytes / scale + BINARY[unit];
        }
        String text = String.format(Locale.ROOT, "%.1f", bytes / (double) scale);
        return text + BINARY[unit];
    }
}
