package dev.stowage.engine.storage;

import java.util.regex.Pattern;

/** Validation of the ids and sizes the pool turns into file names and file offsets. */
final class StorageIds {
    private static final Pattern SAFE = Pattern.compile("[A-Za-z0-9._-]{1,128}");

    /**
     * Largest volume the pool accepts: 64 TiB. Its checksum table (128 GiB, sparse) sits in front
     * of the data in every layer file, so this bound fixes where data starts ({@link Layer#DATA_OFFSET}).
     */
    static final long MAX_SIZE_BYTES = 64L << 40;

    private StorageIds() {}

    /** Returns {@code id} if it is safe as a file name, else throws naming {@code parameter}. */
    static String requireId(String parameter, String id) {
        if (id == null) {
            throw new IllegalArgumentException(parameter + " must not be null");
        }
        if (!SAFE.matcher(id).matches() || id.equals(".") || id.equals("..")) {
            throw new IllegalArgumentException(parameter + " must match [A-Za-z0-9._-]{1,128} and not be"
                    + " \".\" or \"..\": \"" + printable(id) + "\"");
        }
        return id;
    }

    static long requireSize(String parameter, long sizeBytes) {
        if (sizeBytes <= 0 || sizeBytes > MAX_SIZE_BYTES) {
            throw new IllegalArgumentException(parameter + " must be in [1, " + MAX_SIZE_BYTES + "]: " + sizeBytes);
        }
        return sizeBytes;
    }

    private static String printable(String s) {
        String cut = s.length() > 140 ? s.substring(0, 140) + "..." : s;
        StringBuilder b = new StringBuilder();
        for (char c : cut.toCharArray()) {
            b.append(c >= 0x20 && c < 0x7f ? String.valueOf(c) : String.format("\\u%04x", (int) c));
        }
        return b.toString();
    }
}
