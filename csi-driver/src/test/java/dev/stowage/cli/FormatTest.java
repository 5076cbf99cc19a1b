package dev.stowage.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Size parsing and display, the JSON writer, tables and the argument parser of stowctl. */
class FormatTest {

    @Test
    void sizesParseBinaryDecimalAndBareBytes() {
        assertEquals(10L << 30, Sizes.parse("--size", "10GiB"));
        assertEquals(512L << 20, Sizes.parse("--size", "512MiB"));
        assertEquals(1L << 40, Sizes.parse("--size", "1TiB"));
        assertEquals(1_000_000_000L, Sizes.parse("--size", "1G"));
        assertEquals(1_000_000_000L, Sizes.parse("--size", "1gb"));
        assertEquals(4096L, Sizes.parse("--size", "4096"));
        assertEquals(4096L, Sizes.parse("--size", "4Ki"));
        assertEquals(3L << 29, Sizes.parse("--size", "1.5GiB"));
        assertEquals(2_000_000L, Sizes.parse("--size", " 2 M "));
    }

    @Test
    void badSizesAreOneLineNamingTheFlag() {
        for (String bad : List.of("", "GiB", "10XB", "-1GiB", "1.5", "0", "0GiB", "1e9", "99999999PiB", "10 Gib s")) {
            UsageException e = assertThrows(UsageException.class, () -> Sizes.parse("--size", bad), bad);
            assertTrue(e.getMessage().startsWith("--size '" + bad + "'"), e.getMessage());
            assertTrue(!e.getMessage().contains("\n"), e.getMessage());
        }
    }

    @Test
    void sizesDisplayInTheLargestBinaryUnit() {
        assertEquals("512B", Sizes.format(512));
        assertEquals("4KiB", Sizes.format(4096));
        assertEquals("10GiB", Sizes.format(10L << 30));
        assertEquals("1.5GiB", Sizes.format(3L << 29));
        assertEquals("1TiB", Sizes.format(1L << 40));
        assertEquals("953.7MiB", Sizes.format(1_000_000_000L));
        assertEquals("18446744073709551615B", Sizes.format(-1));
        assertEquals("8.0EiB", Sizes.format(Long.MAX_VALUE));
    }

    @Test
    void jsonWriterEscapesAndNestsValidJson() {
        String tricky = "quote\" back\\slash\nnew\ttab \u0001 caf\u00e9 \ud83d\udcbe </script>";
        String doc = new JsonWriter().beginObject()
                .name("s").value(tricky)
                .name("n").value(-42)
                .name("t").value(true)
                .name("z").nullValue()
                .name("empty").beginArray().endArray()
                .name("emptyObject").beginObject().endObject()
                .name("map").value(Map.of("k\"", "v\n"))
                .name("list").beginArray().value("a").value(1).beginObject().name("x").value(false).endObject().endArray()
                .endObject().toString();
        assertTrue(doc.chars().allMatch(c -> c == '\n' || (c >= 0x20 && c < 0x7f)), doc);
        @SuppressWarnings("unchecked")
        Map<String, Object> parsed = (Map<String, Object>) MiniJson.parse(doc);
        assertEquals(tricky, parsed.get("s"));
        assertEquals(-42L, parsed.get("n"));
        assertEquals(true, parsed.get("t"));
        assertTrue(parsed.containsKey("z"));
        assertEquals(List.of(), parsed.get("empty"));
        assertEquals(Map.of(), parsed.get("emptyObject"));
        assertEquals(Map.of("k\"", "v\n"), parsed.get("map"));
        assertEquals(List.of("a", 1L, Map.of("x", false)), parsed.get("list"));
        assertEquals("\"x\"", new JsonWriter().value("x").toString());
    }

    @Test
    void jsonWriterRefusesMisuse() {
        assertThrows(IllegalStateException.class, () -> new JsonWriter().beginObject().value("no name"));
        assertThrows(IllegalStateException.class, () -> new JsonWriter().beginArray().name("x"));
        assertThrows(IllegalStateException.class, () -> new JsonWriter().beginObject().endArray());
        assertThrows(IllegalStateException.class, () -> new JsonWriter().beginObject().toString());
        assertThrows(IllegalStateException.class, () -> new JsonWriter().value(1).value(2));
    }

    @Test
    void tablesAlignColumnsWithoutTrailingBlanks() {
        String t = new Table("ID", "NAME", "SIZE")
                .row("vol-1", "a-long-name", "1GiB")
                .row("vol-22", "b\tc", null)
                .render();
        assertEquals("""
                ID       NAME          SIZE
                vol-1    a-long-name   1GiB
                vol-22   b c           -
                """, t);
        assertThrows(IllegalArgumentException.class, () -> new Table("A", "B").row("only one"));
    }

    @Test
    void argsTakeFlagsAnywhereInEitherSpelling() {
        Args a = Args.parse(List.of("volume", "--size=10GiB", "create", "db", "-o", "json", "--read-only"));
        assertEquals(List.of("volume", "create", "db"), a.words());
        assertEquals("10GiB", a.required("size"));
        assertEquals("json", a.flag("output", "table"));
        assertTrue(a.has("read-only"));
        assertEquals(List.of("db"), a.operands(2, "NAME"));
        assertThrows(UsageException.class, () -> a.operands(2, "NAME", "OTHER"));
        assertThrows(UsageException.class, () -> a.operands(1, "NAME"));
        assertThrows(UsageException.class, () -> a.allowOnly("volume create", "repl"));
        assertThrows(UsageException.class, () -> Args.parse(List.of("volume", "--size")));
        assertThrows(UsageException.class, () -> Args.parse(List.of("--repl", "1", "--repl", "2")));
        assertThrows(UsageException.class, () -> Args.parse(List.of("-x")));
        assertThrows(UsageException.class, () -> Args.parse(List.of("volume")).required("size"));
    }
}
