package io.jtap.tap;

import java.nio.charset.StandardCharsets;

/**
 * Layout of {@code struct ifreq} ({@code linux/if.h}) as far as {@code TUNSETIFF} uses it, on 64-bit Linux.
 *
 * <pre>
 *   0                                16           18                          40
 *   +--------------------------------+------------+---------------------------+
 *   | ifr_name[IFNAMSIZ], NUL-padded | ifr_flags  | rest of the union (unused)|
 *   +--------------------------------+------------+---------------------------+
 *                                      short, native order
 * </pre>
 *
 * The union's largest member is {@code struct ifmap} (two {@code unsigned long}s, a short, three chars: 24 bytes with
 * padding), so the whole struct is 40 bytes. {@code LinuxTapHeadersTest} checks both numbers against a C compiler.
 */
public final class IfReqDescriptor {
    /** {@code IFNAMSIZ}: the name buffer, including its terminating NUL. */
    public static final int IFNAMSIZ = 16;
    public static final int IFR_NAME_OFFSET = 0;
    public static final int IFR_FLAGS_OFFSET = 16;
    /** {@code ifr_mtu}: an {@code int} in the union, for {@code SIOCGIFMTU} / {@code SIOCSIFMTU}. */
    public static final int IFR_MTU_OFFSET = 16;
    /** {@code sizeof(struct ifreq)}. */
    public static final int LENGTH = 40;

    private IfReqDescriptor() {
    }

    /**
     * Checks an interface name the way the kernel's {@code dev_valid_name()} does, so that a bad name fails here with a
     * message rather than as {@code EINVAL} from {@code TUNSETIFF}. A {@code %d} template such as {@code tap%d} is
     * allowed: the kernel replaces it with the first free number.
     *
     * @return the name as bytes, without a terminating NUL
     * @throws IllegalArgumentException naming the rule the name breaks
     */
    public static byte[] validateName(String name) {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("invalid interface name: empty, name=\"" + name + "\"");
        }
        byte[] bytes = name.getBytes(StandardCharsets.UTF_8);
        String problem = null;
        if (bytes.length > IFNAMSIZ - 1) {
            problem = "longer than " + (IFNAMSIZ - 1) + " bytes (IFNAMSIZ - 1): length=" + bytes.length;
        } else if (name.equals(".") || name.equals("..")) {
            problem = "'.' and '..' are not interface names";
        } else {
            for (byte b : bytes) {
                if (b == '/' || b == ':' || b == 0 || Character.isWhitespace((char) (b & 0xff))) {
                    problem = "contains '/', ':', NUL or whitespace";
                    break;
                }
            }
        }
        if (problem != null) {
            throw new IllegalArgumentException("invalid interface name: " + problem + ", name=\"" + name + "\"");
        }
        return bytes;
    }
}
