package dev.stowage.cli;

import java.util.ArrayList;
import java.util.List;

/**
 * A human table: a header row and rows, columns left-aligned to their widest cell and separated by
 * three spaces, no trailing blanks. Control characters in cells become spaces so a row stays one line.
 * Not thread-safe.
 */
public final class Table {
    private static final String GAP = "   ";
    private final List<String[]> rows = new ArrayList<>();
    private final int columns;

    public Table(String... headers) {
        this.columns = headers.length;
        rows.add(headers.clone());
    }

    /** Adds a row; it must have one cell per header. Null cells print as "-". */
    public Table row(String... cells) {
        if (cells.length != columns) {
            throw new IllegalArgumentException("row has " + cells.length + " cells, table has " + columns + " columns");
        }
        String[] clean = new String[columns];
        for (int i = 0; i < columns; i++) {
            clean[i] = cells[i] == null || cells[i].isEmpty() ? "-" : cells[i].replaceAll("\\p{Cntrl}", " ");
        }
        rows.add(clean);
        return this;
    }

    /** The table, one line per row, each ending in a newline. */
    public String render() {
        int[] widths = new int[columns];
        for (String[] row : rows) {
            for (int i = 0; i < columns; i++) {
                widths[i] = Math.max(widths[i], row[i].length());
            }
        }
        StringBuilder sb = new StringBuilder();
        for (String[] row : rows) {
            StringBuilder line = new StringBuilder();
            for (int i = 0; i < columns; i++) {
                line.append(row[i]);
                if (i < columns - 1) {
                    line.append(" ".repeat(widths[i] - row[i].length())).append(GAP);
                }
            }
            sb.append(line.toString().stripTrailing()).append('\n');
        }
        return sb.toString();
    }
}
