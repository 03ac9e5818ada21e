package io.jtap.formats.tool;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.Locale;

/**
 * Sizes as qemu-img reads and prints them. Reading ({@code qemu_strtosz}): a decimal number, optionally with a
 * fraction, and an optional binary suffix {@code B K M G T P E} (case-insensitive, powers of 1024); no suffix means
 * bytes. Printing ({@code size_to_str}): three significant digits and a binary unit, "324 KiB", "1.5 GiB".
 */
public final class ByteSizes {
    private static final String UNITS = "BKMGTPE";
    private static final String[] PRINT_SUFFIXES = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};

    private ByteSizes() {
    }

    /**
     * Parses a size such as {@code 10G}, {@code 1.5M}, {@code 4096}.
     *
     * @param what names the value in the error message, for example "image size"
     * @throws IllegalArgumentException with a message naming {@code what} and the text
     */
    public static long parse(String what, String text) {
        String t = text.trim();
        if (t.isEmpty()) {
            throw new IllegalArgumentException("invalid " + what + ": value is empty");
        }
        int unit = 0;
        char last = Character.toUpperCase(t.charAt(t.length() - 1));
        String number = t;
        if (!Character.isDigit(last) && last != '.') {
            unit = UNITS.indexOf(last);
            if (unit < 0) {
                throw new IllegalArgumentException("invalid " + what + ": '" + text
                        + "' (allowed suffixes: k, M, G, T, P, E, or b for bytes)");
            }
            number = t.substring(0, t.length() - 1);
        }
        BigDecimal value;
        try {
            value = new BigDecimal(number);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("invalid " + what + ": '" + text + "' is not a number");
        }
        if (value.signum() < 0) {
            throw new IllegalArgumentException("invalid " + what + ": '" + text + "' is negative");
        }
        BigDecimal bytes = value.multiply(new BigDecimal(java.math.BigInteger.ONE.shiftLeft(10 * unit)))
                .setScale(0, RoundingMode.DOWN);
        if (bytes.compareTo(BigDecimal.valueOf(Long.MAX_VALUE)) > 0) {
            throw new IllegalArgumentException("invalid " + what + ": '" + text + "' is too large (limit 8 EiB)");
        }
        return bytes.longValueExact();
    }

    /** {@code size_to_str}: three significant digits and a binary unit, switching up at 1000. */
    public static String format(long bytes) {
        if (bytes < 1000) {
            return bytes + " B";
        }
        int i = 0;
        double scaled = bytes;
        while (scaled >= 1000 && i < PRINT_SUFFIXES.length - 1) {
            scaled /= 1024;
            i++;
        }
        BigDecimal v = new BigDecimal(bytes).divide(new BigDecimal(java.math.BigInteger.ONE.shiftLeft(10 * i)),
                new MathContext(3, RoundingMode.HALF_EVEN));
        return v.stripTrailingZeros().toPlainString() + " " + PRINT_SUFFIXES[i] + "B";
    }

    /** {@code value} in lower-case hex with a 0x prefix, except 0 (as C's {@code %#x}). */
    public static String hex(long value) {
        return value == 0 ? "0" : "0x" + Long.toHexString(value).toLowerCase(Locale.ROOT);
    }
}
