package dev.stowage.engine.cluster;

import dev.stowage.proto.metadata.NodeRecord;

import java.io.IOException;

/**
 * Converts {@link NodeDescriptor} to and from the {@code NodeRecord} protobuf stored under
 * {@code /stowage/nodes/<id>}. The only class of this package that touches generated protobuf
 * types; callers see domain records and byte arrays.
 *
 * <p>Stateless and thread-safe. Errors: a record that does not parse or does not describe a valid
 * node fails with {@link IllegalArgumentException} naming the field.
 */
public final class NodeProtos {
    private NodeProtos() {}

    public static NodeRecord toProto(NodeDescriptor node) {
        return NodeRecord.newBuilder()
                .setId(node.id())
                .setAddress(node.address())
                .putAllLabels(node.labels())
                .setCapacityBytes(node.capacityBytes())
                .setFreeBytes(node.freeBytes())
                .setStorageless(node.storageless())
                .setApiAddress(node.apiAddress())
                .build();
    }

    /** @throws IllegalArgumentException when the record is not a valid node */
    public static NodeDescriptor fromProto(NodeRecord record) {
        // uint64 fields arrive as signed longs: anything past Long.MAX_VALUE shows as negative.
        if (record.getCapacityBytes() < 0) {
            throw new IllegalArgumentException("capacity_bytes: larger than " + Long.MAX_VALUE);
        }
        if (record.getFreeBytes() < 0) {
            throw new IllegalArgumentException("free_bytes: larger than " + Long.MAX_VALUE);
        }
        return new NodeDescriptor(record.getId(), record.getAddress(), record.getLabelsMap(),
                record.getCapacityBytes(), record.getFreeBytes(), record.getStorageless(), record.getApiAddress());
    }

    /** The serialized record; a fresh array the caller owns. */
    public static byte[] encode(NodeDescriptor node) {
        return toProto(node).toByteArray();
    }

    /** @throws IllegalArgumentException when {@code value} is not a valid serialized node record */
    public static NodeDescriptor decode(byte[] value) {
        NodeRecord record;
        try {
            record = NodeRecord.parseFrom(value);
        } catch (IOException e) { // InvalidProtocolBufferException
            throw new IllegalArgumentException("node record: not a valid NodeRecord (" + e.getMessage() + ")", e);
        }
        return fromProto(record);
    }
}
