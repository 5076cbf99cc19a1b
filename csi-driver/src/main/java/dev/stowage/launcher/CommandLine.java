package dev.stowage.launcher;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The options of a stowage subcommand that takes only {@code --name VALUE} or {@code --name=VALUE}
 * options, each at most once. {@link NodeOptions} has its own parser: it also takes bare flags.
 */
final class CommandLine {
    private CommandLine() {}

    /**
     * The value of each option in {@code args}, by name; an IllegalArgumentException names an
     * unknown option, one without a value, or one given twice.
     */
    static Map<String, String> options(List<String> args, Set<String> names) {
        Map<String, String> values = new HashMap<>();
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            int eq = a.indexOf('=');
            String name = eq > 0 ? a.substring(0, eq) : a;
            if (!names.contains(name)) {
                throw new IllegalArgumentException("unknown option '" + a + "'");
            }
            if (eq < 0 && i + 1 >= args.size()) {
                throw new IllegalArgumentException(a + " needs a value");
            }
            if (values.put(name, eq > 0 ? a.substring(eq + 1) : args.get(++i)) != null) {
                throw new IllegalArgumentException(name + " given twice");
            }
        }
        return values;
    }
}
