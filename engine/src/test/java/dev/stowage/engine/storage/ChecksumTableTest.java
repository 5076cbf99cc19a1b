package dev.stowage.engine.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertFalse;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The table's write-back of changed pages (see {@link ChecksumTable}), on a file of its own. */
class ChecksumTableTest {
    /** Entries per 4 KiB table page. */
    private static final long PAGE_ENTRIES = 512;

    @TempDir
    Path dir;

    private static long inFile(FileChannel f, long block) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        f.read(b, block * 8);
        return b.getLong(0);
    }

    @Test
    void writeBackWritesExactlyTheChangedPagesAcrossWordsAndRuns() throws IOException {
        Path p = dir.resolve("t");
        try (FileChannel f = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE)) {
            ChecksumTable t = new ChecksumTable(p, f);
            // pages 0-2 (a run), 5, 63-64 (a run across two bitmap words), and one in the second chunk
            long[] pages = {0, 1, 2, 5, 63, 64, 16384 + 7};
            for (long page : pages) {
                t.put(page * PAGE_ENTRIES + 3, ChecksumTable.encodeClean((int) page + 1));
            }
            t.put(6 * PAGE_ENTRIES, ChecksumTable.encodeClean(99));
            t.put(6 * PAGE_ENTRIES, ChecksumTable.encodeClean(100)); // twice: still one page
            assertEquals(0, inFile(f, 3), "nothing reaches the file before a write-back");

            assertEquals(pages.length + 1, t.writeBack(false));
            for (long page : pages) {
                assertEquals(ChecksumTable.encodeClean((int) page + 1), inFile(f, page * PAGE_ENTRIES + 3), "page " + page);
            }
            assertEquals(ChecksumTable.encodeClean(100), inFile(f, 6 * PAGE_ENTRIES));
            assertEquals(0, t.writeBack(false), "nothing changed since");
            assertEquals(0, t.writeBack(true), "a full write-back covers the presence changes too");

            t.put(3, ChecksumTable.encodeClean(7)); // an overwrite: no change of presence
            assertEquals(0, t.writeBack(true));
            t.put(PAGE_ENTRIES * 9, ChecksumTable.encodeClean(8)); // a first write
            assertEquals(1, t.writeBack(true));
            assertEquals(ChecksumTable.encodeClean(1), inFile(f, 3), "the overwrite waits for the full write-back");
            assertEquals(2, t.writeBack(false), "the overwritten page, and the first write's page again");
            assertEquals(ChecksumTable.encodeClean(7), inFile(f, 3));
            t.close();
        }
    }

    @Test
    void aFailedWriteBackLeavesItsPagesForTheNextOne() throws IOException {
        Path p = dir.resolve("t");
        FileChannel f = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
        ChecksumTable t = new ChecksumTable(p, f);
        t.put(10, ChecksumTable.encodeClean(1));
        t.put(PAGE_ENTRIES * 3, ChecksumTable.encodeClean(2));
        f.close();
        assertThrows(ClosedChannelException.class, () -> t.writeBack(true));
        assertThrows(ClosedChannelException.class, () -> t.writeBack(true),
                "a flush after a failed one must not succeed without the pages");
        assertThrows(ClosedChannelException.class, () -> t.writeBack(false));
    }

    @Test
    void aZeroBlockIsFoundInEveryKindOfBufferAndOneNonZeroByteAnywhereSpoilsIt() {
        int block = ReplicaStore.BLOCK_SIZE;
        for (java.nio.ByteBuffer buf : new java.nio.ByteBuffer[] {java.nio.ByteBuffer.allocate(3 * block),
                java.nio.ByteBuffer.allocateDirect(3 * block), java.nio.ByteBuffer.allocateDirect(3 * block).asReadOnlyBuffer()}) {
            assertTrue(ChecksumTable.isZeroBlock(buf, block), buf.toString());
            if (buf.isReadOnly()) {
                continue;
            }
            for (int at : new int[] {block, block + 1, 2 * block - 1}) {
                buf.put(at, (byte) 1);
                assertFalse(ChecksumTable.isZeroBlock(buf, block), "byte " + (at - block) + " of " + buf);
                assertTrue(ChecksumTable.isZeroBlock(buf, 2 * block), "the next block is untouched");
                buf.put(at, (byte) 0);
            }
            buf.put(block - 1, (byte) 1); // just before the block
            buf.put(2 * block, (byte) 1); // just after it
            buf.position(7); // the position does not matter (the block must lie below the limit, as with getLong)
            assertTrue(ChecksumTable.isZeroBlock(buf, block), buf.toString());
            assertEquals(7, buf.position());
        }
    }
}
