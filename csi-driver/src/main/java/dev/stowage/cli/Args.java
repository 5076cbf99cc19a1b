package dev.stowage.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A parsed stowctl command line: the words (command and operands) in order, and the flags. Flags take
 * a value ({@code --size 10GiB} or {@code --size=10GiB}) except the switches in {@link #SWITCHES};
 * {@code -o} is short for {@code --output}. Flags may appear anywhere; a flag given twice, or one without
 * its value, is a {@link UsageException}. Not thread-safe.
 */
public final class Args {
    static final Set<String> SWITCHES = Set.of("read-only", "force", "help");
    private final List<String> words;
    private final Map<String, String> flags;

    private Args(List<String> words, Map<String, String> flags) {
        this.words = words;
        this.flags = flags;
    }

    public static Args parse(List<String> args) {
        List<String> words = new ArrayList<>();
        Map<String, String> flags = new LinkedHashMap<>();
        for (int i = 0; i < args.size(); i++) {
            String arg = args.get(i);
            if (arg.equals("-o") || arg.equals("-h")) {
                arg = arg.equals("-o") ? "--output" : "--help";
            }
            if (!arg.startsWith("--") || arg.length() == 2) {
                if (arg.startsWith("-") && arg.length() > 1 && !arg.equals("--")) {
                    throw new UsageException("unknown flag " + arg);
                }
                words.add(arg);
                continue;
            }
            String name = arg.substring(2);
            String value;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            } else if (SWITCHES.contains(name)) {
                value = "true";
            } else {
                if (i + 1 >= args.size()) {
                    throw new UsageException("--" + name + " needs a value");
                }
                value = args.get(++i);
            }
            if (flags.put(name, value) != null) {
                throw new UsageException("--" + name + " given twice");
            }
        }
        return new Args(List.copyOf(words), flags);
    }

    public List<String> words() {
        return words;
    }

    /** The flag's value, or {@code dflt} when it was not given. */
    public String flag(String name, String dflt) {
        return flags.getOrDefault(name, dflt);
    }

    public boolean has(String name) {
        return flags.containsKey(name);
    }

    /** The flag's value; a {@link UsageException} if it is missing or empty. */
    public String required(String name) {
        String v = flags.get(name);
        if (v == null || v.isBlank()) {
            throw new UsageException("--" + name + " is required");
        }
        return v;
    }

    /** Refuses flags other than the global ones and {@code allowed}. */
    public void allowOnly(String command, String... allowed) {
        Set<String> ok = Set.of(allowed);
        for (String name : flags.keySet()) {
            if (!ok.contains(name) && !StowctlMain.GLOBAL_FLAGS.contains(name)) {
                throw new UsageException("'" + command + "' does not take --" + name);
            }
        }
    }

    /** Exactly {@code count} operands after the first {@code skip} words (the command), named for errors. */
    public List<String> operands(int skip, String... names) {
        List<String> rest = words.subList(Math.min(skip, words.size()), words.size());
        if (rest.size() < names.length) {
            throw new UsageException(String.join(" ", words) + ": missing " + names[rest.size()]);
        }
        if (rest.size() > names.length) {
            throw new UsageException(String.join(" ", words) + ": unexpected '" + rest.get(names.length) + "'");
        }
        return rest;
    }
}
