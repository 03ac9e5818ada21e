package io.jtap.formats.tool;

import io.jtap.formats.BackingReference;
import io.jtap.formats.CreateOptions;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * qemu-img's {@code -o key=value,key=value} lists (a doubled comma is a literal comma; several {@code -o} add up),
 * and their translation into {@link CreateOptions}: {@code size}, {@code backing_file}, {@code backing_fmt} and
 * {@code preallocation} are generic, everything else goes to the format, which rejects what it does not know.
 */
final class OptionList {
    private OptionList() {
    }

    static Map<String, String> parse(List<String> lists) {
        Map<String, String> out = new LinkedHashMap<>();
        for (String list : lists) {
            for (String item : split(list)) {
                if (item.isEmpty()) {
                    continue;
                }
                int eq = item.indexOf('=');
                if (eq <= 0) {
                    throw new ToolException(1, "Invalid option '" + item + "' in -o: expected key=value");
                }
                out.put(item.substring(0, eq), item.substring(eq + 1));
            }
        }
        return out;
    }

    private static List<String> split(String list) {
        List<String> items = new java.util.ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (int i = 0; i < list.length(); i++) {
            char c = list.charAt(i);
            if (c == ',' && i + 1 < list.length() && list.charAt(i + 1) == ',') {
                cur.append(',');
                i++;
            } else if (c == ',') {
                items.add(cur.toString());
                cur.setLength(0);
            } else {
                cur.append(c);
            }
        }
        items.add(cur.toString());
        return items;
    }

    /**
     * Builds create options. {@code size} (bytes, -1 when not given on the command line) wins over {@code -o size};
     * {@code backing}/{@code backingFormat} ({@code -b}/{@code -F}) win over {@code -o backing_file/backing_fmt}.
     */
    static CreateOptions toCreateOptions(Map<String, String> options, long size, String backing,
                                         String backingFormat) {
        Map<String, String> rest = new LinkedHashMap<>(options);
        String sizeText = rest.remove("size");
        long s = size;
        if (s < 0 && sizeText != null) {
            s = ByteSizes.parse("image size", sizeText);
        }
        String b = Optional.ofNullable(backing).orElse(rest.remove("backing_file"));
        rest.remove("backing_file");
        String bf = Optional.ofNullable(backingFormat).orElse(rest.remove("backing_fmt"));
        rest.remove("backing_fmt");
        CreateOptions.Preallocation pre = switch (rest.getOrDefault("preallocation", "off")) {
            case "off" -> CreateOptions.Preallocation.OFF;
            case "falloc" -> CreateOptions.Preallocation.FALLOC;
            case "full" -> CreateOptions.Preallocation.FULL;
            case "metadata" -> throw new ToolException(1,
                    "preallocation=metadata is not supported by jtap yet (supported: off, falloc, full)");
            default -> throw new ToolException(1, "Invalid value for preallocation: '" + rest.get("preallocation")
                    + "' (supported: off, falloc, full)");
        };
        rest.remove("preallocation");
        if ("off".equals(rest.get("extended_l2"))) {
            rest.remove("extended_l2");
        }
        if ("off".equals(rest.get("lazy_refcounts"))) {
            rest.remove("lazy_refcounts");
        }
        if ("zlib".equals(rest.get("compression_type"))) {
            rest.remove("compression_type");
        }
        if (rest.containsKey("cluster_size")) {
            rest.put("cluster_size", String.valueOf(ByteSizes.parse("cluster_size", rest.get("cluster_size"))));
        }
        CreateOptions c = new CreateOptions(Math.max(s, 0), b == null || b.isEmpty() ? Optional.empty()
                : Optional.of(new BackingReference(b, Optional.ofNullable(bf))), pre, rest);
        return c;
    }
}
