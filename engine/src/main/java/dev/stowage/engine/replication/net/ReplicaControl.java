package dev.stowage.engine.replication.net;

import dev.stowage.engine.storage.ReplicaStore;
import dev.stowage.engine.storage.StoragePool;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The replica server's control requests (CREATE, DELETE, RESIZE, SNAPSHOT, DELETE_SNAPSHOT, LIST):
 * the control plane of the cluster creates, grows, snapshots and deletes the replica data a node
 * holds. They carry no handle and epoch 0 and are not fenced: the caller serialises them through
 * compare-and-set on the volume's metadata. Each is idempotent where the brief of the operation
 * allows (see {@link FrameType}).
 *
 * <p>Validation: ids must be safe file names ({@code [A-Za-z0-9._-]{1,128}}, not {@code .} or
 * {@code ..}); a bad id, size, handle or epoch is answered BAD_REQUEST naming the field. A missing
 * volume or snapshot is NOT_FOUND, a storage failure IO_ERROR.
 *
 * <p>Threading: stateless and thread-safe; {@link #serve} runs on the server's I/O threads (it
 * blocks on storage), never on an event loop.
 */
final class ReplicaControl {
    private static final Logger LOG = LoggerFactory.getLogger(ReplicaControl.class);
    private static final Pattern SAFE_ID = Pattern.compile("[A-Za-z0-9._-]{1,128}");

    private final ReplicaServer server;
    private final StoragePool pool;

    ReplicaControl(ReplicaServer server, StoragePool pool) {
        this.server = server;
        this.pool = pool;
    }

    /** Why {@code id} is not acceptable as the {@code field} id, or {@code null} if it is. */
    static String idProblem(String field, String id) {
        if (SAFE_ID.matcher(id).matches() && !id.equals(".") && !id.equals("..")) {
            return null;
        }
        return field + " must match [A-Za-z0-9._-]{1,128} and not be \".\" or \"..\"";
    }

    /** Serves one control request; never throws. */
    Frame serve(Frame req) {
        FrameType type = req.type();
        if (req.handle() != 0 || req.epoch() != 0) {
            return bad(req, "handle and epoch must be 0 in a " + type + " request: "
                    + req.handle() + ", " + req.epoch());
        }
        try {
            return switch (type) {
                case CREATE -> create(req);
                case DELETE -> delete(req);
                case RESIZE -> resize(req);
                case SNAPSHOT -> snapshot(req);
                case DELETE_SNAPSHOT -> deleteSnapshot(req);
                case LIST -> list(req);
                default -> bad(req, type + " is not a control request");
            };
        } catch (IllegalArgumentException e) {
            return bad(req, e.getMessage());
        } catch (NoSuchFileException e) {
            return Frame.error(req, FrameStatus.NOT_FOUND, 0, req.offset(), e.getFile() + " does not exist");
        } catch (IOException e) {
            LOG.warn("control request {} failed", req, e);
            return Frame.error(req, FrameStatus.IO_ERROR, 0, req.offset(), e.toString());
        }
    }

    private Frame create(Frame req) throws IOException {
        String[] ids = ids(req, "volumeId", "snapshotId");
        long size = size(req);
        long created = server.createVolume(ids[0], ids.length > 1 ? ids[1] : null, size);
        return ok(req, created, 0, Unpooled.EMPTY_BUFFER);
    }

    private Frame delete(Frame req) throws IOException {
        String id = ids(req, "volumeId", null)[0];
        server.deleteVolume(id);
        return ok(req, 0, 0, Unpooled.EMPTY_BUFFER);
    }

    private Frame resize(Frame req) throws IOException {
        String id = ids(req, "volumeId", null)[0];
        long size = size(req);
        Optional<ReplicaStore> store = pool.open(id);
        if (store.isEmpty()) {
            throw new NoSuchFileException("volume " + id);
        }
        long before = store.get().sizeBytes();
        if (size < before) {
            throw new IllegalArgumentException("size (offset) " + size + " is smaller than the volume's size " + before
                    + ": shrinking is not supported");
        }
        if (size > before) {
            store.get().resize(size);
        }
        return ok(req, store.get().sizeBytes(), 0, Unpooled.EMPTY_BUFFER);
    }

    private Frame snapshot(Frame req) throws IOException {
        String[] ids = ids(req, "volumeId", "snapshotId");
        if (ids.length != 2) {
            throw new IllegalArgumentException("payload must be volumeId\\0snapshotId");
        }
        if (!pool.snapshotExists(ids[1])) {
            try {
                pool.snapshot(ids[0], ids[1]);
                LOG.info("volume {}: snapshot {} taken", ids[0], ids[1]);
            } catch (FileAlreadyExistsException e) {
                // taken meanwhile through the pool directly: as idempotent as above
            }
        }
        return ok(req, 0, 0, Unpooled.EMPTY_BUFFER);
    }

    private Frame deleteSnapshot(Frame req) throws IOException {
        String id = ids(req, "snapshotId", null)[0];
        pool.deleteSnapshot(id);
        return ok(req, 0, 0, Unpooled.EMPTY_BUFFER);
    }

    private Frame list(Frame req) throws IOException {
        List<String> ids = new ArrayList<>(pool.volumeIds());
        ids.sort(null);
        byte[] text = String.join("\n", ids).getBytes(StandardCharsets.UTF_8);
        if (text.length > Frame.MAX_PAYLOAD) {
            throw new IOException(ids.size() + " volume ids do not fit in one frame");
        }
        return ok(req, 0, ids.size(), Unpooled.wrappedBuffer(text));
    }

    /**
     * The ids in the payload: {@code first}, or {@code first\0second} when {@code second} is not
     * null (without a NUL, one id). With {@code second} null a NUL fails the id's validation.
     */
    private static String[] ids(Frame req, String first, String second) {
        String text = req.payloadText();
        int nul = text.indexOf('\0');
        String[] ids = nul < 0 || second == null ? new String[] {text}
                : new String[] {text.substring(0, nul), text.substring(nul + 1)};
        String problem = idProblem(first, ids[0]);
        if (problem == null && ids.length > 1) {
            problem = idProblem(second, ids[1]);
        }
        if (problem != null) {
            throw new IllegalArgumentException(problem);
        }
        return ids;
    }

    private static long size(Frame req) {
        if (req.offset() <= 0) {
            throw new IllegalArgumentException("size (offset) must be > 0: " + req.offset());
        }
        return req.offset();
    }

    private static Frame ok(Frame req, long offset, int aux, ByteBuf payload) {
        return Frame.response(req, FrameStatus.OK, 0, offset, aux, payload);
    }

    private static Frame bad(Frame req, String message) {
        return Frame.error(req, FrameStatus.BAD_REQUEST, 0, req.offset(), message);
    }
}
