package dev.stowage.cli;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Map;

/**
 * A small streaming JSON writer for stowctl's {@code -o json}: objects, arrays, strings, numbers,
 * booleans and null, indented by two spaces. Every character outside printable ASCII is written as a
 * {@code \\uXXXX} escape, so the output is valid JSON and pure ASCII whatever the terminal's encoding.
 * Misuse (a value where a name is due, unbalanced ends) is an {@link IllegalStateException}.
 *
 * <p>Not thread-safe: one writer per document.
 */
public final class JsonWriter {
    private final StringBuilder out = new StringBuilder();
    /** Per open container: true for an object, and whether it has members yet. */
    private final Deque<boolean[]> open = new ArrayDeque<>();
    private boolean nameWritten;
    private boolean done;

    public JsonWriter beginObject() {
        beforeValue();
        out.append('{');
        open.push(new boolean[] {true, false});
        return this;
    }

    public JsonWriter endObject() {
        return end(true, '}');
    }

    public JsonWriter beginArray() {
        beforeValue();
        out.append('[');
        open.push(new boolean[] {false, false});
        return this;
    }

    public JsonWriter endArray() {
        return end(false, ']');
    }

    /** The name of the next member of the current object. */
    public JsonWriter name(String name) {
        boolean[] top = open.peek();
        if (top == null || !top[0] || nameWritten) {
            throw new IllegalStateException("a name is only allowed inside an object, before its value");
        }
        separate(top);
        quote(name);
        out.append(": ");
        nameWritten = true;
        return this;
    }

    /** A string, or null. */
    public JsonWriter value(String value) {
        if (value == null) {
            return nullValue();
        }
        beforeValue();
        quote(value);
        return scalarWritten();
    }

    public JsonWriter value(long value) {
        beforeValue();
        out.append(value);
        return scalarWritten();
    }

    public JsonWriter value(boolean value) {
        beforeValue();
        out.append(value);
        return scalarWritten();
    }

    public JsonWriter nullValue() {
        beforeValue();
        out.append("null");
        return scalarWritten();
    }

    /** A string-to-string map as an object (in the map's iteration order). */
    public JsonWriter value(Map<String, String> map) {
        beginObject();
        for (Map.Entry<String, String> e : map.entrySet()) {
            name(e.getKey()).value(e.getValue());
        }
        return endObject();
    }

    /** The document, once its top-level value is complete. */
    @Override
    public String toString() {
        if (!done) {
            throw new IllegalStateException("the JSON document is not complete");
        }
        return out.toString();
    }

    private JsonWriter end(boolean object, char bracket) {
        boolean[] top = open.peek();
        if (top == null || top[0] != object || nameWritten) {
            throw new IllegalStateException("unbalanced " + bracket);
        }
        open.pop();
        if (top[1]) {
            newline();
        }
        out.append(bracket);
        done = open.isEmpty();
        return this;
    }

    private JsonWriter scalarWritten() {
        done = open.isEmpty();
        return this;
    }

    private void beforeValue() {
        if (done) {
            throw new IllegalStateException("the JSON document is already complete");
        }
        boolean[] top = open.peek();
        if (top == null) {
            return; // the top-level value
        }
        if (top[0]) {
            if (!nameWritten) {
                throw new IllegalStateException("an object member needs a name first");
            }
            nameWritten = false;
        } else {
            separate(top);
        }
    }

    private void separate(boolean[] top) {
        if (top[1]) {
            out.append(',');
        }
        top[1] = true;
        newline();
    }

    private void newline() {
        out.append('\n');
        out.append("  ".repeat(open.size()));
    }

    private void quote(String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20 || c > 0x7e) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
