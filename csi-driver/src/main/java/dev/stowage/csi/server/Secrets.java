package dev.stowage.csi.server;

import java.util.Map;

import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import com.google.protobuf.TextFormat;

import csi.v1.Csi;

/**
 * Removes secrets from CSI messages before anything logs them. A field is a secret when the CSI spec marks
 * it with the {@code csi_secret} option, or when it is named {@code secrets} (so a field the spec forgets
 * to mark is still hidden). Nested messages are stripped too.
 *
 * <p>Threading: stateless and thread-safe; the input message is not modified.
 */
public final class Secrets {
    private Secrets() {}

    /** A copy of {@code message} with every secret field cleared. */
    public static Message strip(Message message) {
        Message.Builder builder = null;
        for (Map.Entry<FieldDescriptor, Object> entry : message.getAllFields().entrySet()) {
            FieldDescriptor field = entry.getKey();
            if (isSecret(field)) {
                builder = builder == null ? message.toBuilder() : builder;
                builder.clearField(field);
            } else if (field.getJavaType() == FieldDescriptor.JavaType.MESSAGE && !field.isMapField()) {
                if (field.isRepeated()) {
                    int count = message.getRepeatedFieldCount(field);
                    for (int i = 0; i < count; i++) {
                        Message item = (Message) message.getRepeatedField(field, i);
                        Message stripped = strip(item);
                        if (stripped != item) {
                            builder = builder == null ? message.toBuilder() : builder;
                            builder.setRepeatedField(field, i, stripped);
                        }
                    }
                } else {
                    Message item = (Message) entry.getValue();
                    Message stripped = strip(item);
                    if (stripped != item) {
                        builder = builder == null ? message.toBuilder() : builder;
                        builder.setField(field, stripped);
                    }
                }
            }
        }
        return builder == null ? message : builder.build();
    }

    /** {@code message} without secrets, as one line of protobuf text for a log. */
    public static String toLogString(Object message) {
        if (message instanceof Message m) {
            return TextFormat.printer().emittingSingleLine(true).printToString(strip(m));
        }
        return String.valueOf(message);
    }

    static boolean isSecret(FieldDescriptor field) {
        if (field.getName().equals("secrets")) {
            return true;
        }
        return field.getOptions().hasExtension(Csi.csiSecret) && field.getOptions().getExtension(Csi.csiSecret);
    }
}
