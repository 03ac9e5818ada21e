package io.jtap.formats.tool;

import java.util.List;
import java.util.Map;

/**
 * A minimal JSON writer for jtap-img's machine-readable output: maps (in insertion order), lists, strings, numbers,
 * booleans and null. {@link #pretty} indents by four spaces as qemu-img's {@code --output=json} does;
 * {@link #compact} writes one line (for {@code --progress=jsonl}).
 */
public final class Json {
    private Json() {
    }

    public static String pretty(Object value) {
        StringBuilder sb = new StringBuilder();
        write(sb, value, 0, true);
        return sb.toString();
    }

    public static String compact(Object value) {
        StringBuilder sb = new StringBuilder();
        write(sb, value, 0, false);
        return sb.toString();
    }

    private static void write(StringBuilder sb, Object v, int depth, boolean pretty) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof String s) {
            quote(sb, s);
        } else if (v instanceof Number || v instanceof Boolean) {
            sb.append(v);
        } else if (v instanceof Map<?, ?> m) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                sb.append(first ? "" : ",");
                newline(sb, depth + 1, pretty);
                quote(sb, String.valueOf(e.getKey()));
                sb.append(pretty ? ": " : ":");
                write(sb, e.getValue(), depth + 1, pretty);
                first = false;
            }
            if (!m.isEmpty()) {
                newline(sb, depth, pretty);
            }
            sb.append('}');
        } else if (v instanceof List<?> l) {
            sb.append('[');
            boolean first = true;
            for (Object o : l) {
                sb.append(first ? "" : ",");
                newline(sb, depth + 1, pretty);
                write(sb, o, depth + 1, pretty);
                first = false;
            }
            if (!l.isEmpty()) {
                newline(sb, depth, pretty);
            }
            sb.append(']');
        } else {
            throw new IllegalArgumentException("not a JSON value: type=" + v.getClass().getName());
        }
    }

    private static void newline(StringBuilder sb, int depth, boolean pretty) {
        if (pretty) {
            sb.append('\n').append("    ".repeat(depth));
        }
    }

    static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }
}
