package dev.stowage.engine.storage;

import java.lang.reflect.Field;
import java.lang.reflect.Method;

/**
 * The JDK's {@code sun.misc.Unsafe} (module jdk.unsupported), looked up once by reflection for the
 * two things the storage layer takes from it: releasing a mapping at once ({@link ChecksumTable})
 * and reading a FileChannel's descriptor number ({@link PageCacheAdvice}). Where the JDK does not
 * allow it, {@link #INSTANCE} is null and {@link #method} answers null; callers then fall back.
 */
final class SunUnsafe {
    /** The Unsafe instance, or null if it cannot be reached. */
    static final Object INSTANCE;
    private static final Class<?> TYPE;

    static {
        Object unsafe = null;
        Class<?> type = null;
        try {
            type = Class.forName("sun.misc.Unsafe");
            Field f = type.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            unsafe = f.get(null);
        } catch (ReflectiveOperationException | RuntimeException e) {
            unsafe = null;
            type = null;
        }
        INSTANCE = unsafe;
        TYPE = type;
    }

    private SunUnsafe() {
    }

    /** The public Unsafe method {@code name(parameters)}, or null if Unsafe or the method is unavailable. */
    static Method method(String name, Class<?>... parameters) {
        if (TYPE == null) {
            return null;
        }
        try {
            return TYPE.getMethod(name, parameters);
        } catch (NoSuchMethodException | RuntimeException e) {
            return null;
        }
    }
}
