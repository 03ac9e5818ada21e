package io.jtap.xen;

import java.util.ArrayList;
import java.util.List;

/**
 * One entry of a node's permission list, in xenstored's string form {@code <access><domid>}: "n0", "r5", "w7", "b3".
 *
 * <p>In a node's list the <em>first</em> entry names the owner, and its access is what every domain not listed later
 * gets; the owner itself (and any privileged domain, i.e. dom0) always has full access. Later entries grant their
 * access to their domain. (xenstored: {@code perm_for_conn}.)
 */
public record XenStorePermission(int domid, Access access) {
    /** The access letters of xenstored's permission strings. */
    public enum Access {
        NONE('n'), READ('r'), WRITE('w'), BOTH('b');

        private final char letter;

        Access(char letter) {
            this.letter = letter;
        }

        public char letter() {
            return letter;
        }

        public boolean canRead() {
            return this == READ || this == BOTH;
        }

        public boolean canWrite() {
            return this == WRITE || this == BOTH;
        }

        static Access ofLetter(char letter) {
            for (Access a : values()) {
                if (a.letter == letter) {
                    return a;
                }
            }
            return null;
        }
    }

    public XenStorePermission {
        if (domid < 0 || domid > 0xFFFF) {
            throw new IllegalArgumentException("xenstore permission domid out of range: domid=" + domid);
        }
        if (access == null) {
            throw new IllegalArgumentException("xenstore permission needs an access");
        }
    }

    public static XenStorePermission of(int domid, Access access) {
        return new XenStorePermission(domid, access);
    }

    /**
     * Parses xenstored's form, e.g. "r5".
     *
     * @throws IllegalArgumentException if {@code text} is not a letter n/r/w/b followed by a decimal domid
     */
    public static XenStorePermission parse(String text) {
        if (text == null || text.length() < 2) {
            throw new IllegalArgumentException("bad xenstore permission: text=" + text);
        }
        Access access = Access.ofLetter(text.charAt(0));
        if (access == null) {
            throw new IllegalArgumentException("bad xenstore permission access letter: text=" + text);
        }
        int domid;
        try {
            domid = Integer.parseInt(text.substring(1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad xenstore permission domid: text=" + text, e);
        }
        return new XenStorePermission(domid, access);
    }

    /** Parses a list such as "n0 r5" or "n0,r5" (whitespace or comma separated); convenience for tests and tools. */
    public static List<XenStorePermission> parseList(String text) {
        List<XenStorePermission> out = new ArrayList<>();
        for (String part : text.trim().split("[\\s,]+")) {
            if (!part.isEmpty()) {
                out.add(parse(part));
            }
        }
        return List.copyOf(out);
    }

    /** xenstored's form, e.g. "r5". */
    @Override
    public String toString() {
        return access.letter + Integer.toString(domid);
    }
}
