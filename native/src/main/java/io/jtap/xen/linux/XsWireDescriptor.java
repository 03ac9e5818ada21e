package io.jtap.xen.linux;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Layout of one xenstore wire message, mirroring {@code struct xsd_sockmsg} in {@code xen/io/xs_wire.h}. The same
 * bytes travel over xenstored's unix socket and {@code /dev/xen/xenbus}.
 *
 * <pre>
 *   0               4               8               12              16
 *   +---------------+---------------+---------------+---------------+-------------------------+
 *   | type (LE u32) | req_id        | tx_id         | len           | payload: len bytes      |
 *   +---------------+---------------+---------------+---------------+-------------------------+
 *   payload: NUL-terminated strings ("path\0token\0"), except a written value and a read reply, which are raw bytes;
 *   len <= XENSTORE_PAYLOAD_MAX.
 * </pre>
 */
public final class XsWireDescriptor {
    public static final int TYPE_OFFSET = 0;
    public static final int REQ_ID_OFFSET = 4;
    public static final int TX_ID_OFFSET = 8;
    public static final int LEN_OFFSET = 12;
    public static final int HEADER_LENGTH = 16;
    /** XENSTORE_PAYLOAD_MAX: "Violating this is very bad" — xenstored drops the connection. */
    public static final int XENSTORE_PAYLOAD_MAX = 4096;

    // enum xsd_sockmsg_type
    public static final int XS_CONTROL = 0;
    public static final int XS_DIRECTORY = 1;
    public static final int XS_READ = 2;
    public static final int XS_GET_PERMS = 3;
    public static final int XS_WATCH = 4;
    public static final int XS_UNWATCH = 5;
    public static final int XS_TRANSACTION_START = 6;
    public static final int XS_TRANSACTION_END = 7;
    public static final int XS_INTRODUCE = 8;
    public static final int XS_RELEASE = 9;
    public static final int XS_GET_DOMAIN_PATH = 10;
    public static final int XS_WRITE = 11;
    public static final int XS_MKDIR = 12;
    public static final int XS_RM = 13;
    public static final int XS_SET_PERMS = 14;
    public static final int XS_WATCH_EVENT = 15;
    public static final int XS_ERROR = 16;
    public static final int XS_IS_DOMAIN_INTRODUCED = 17;
    public static final int XS_RESUME = 18;
    public static final int XS_SET_TARGET = 19;
    public static final int XS_RESET_WATCHES = XS_SET_TARGET + 2;
    public static final int XS_DIRECTORY_PART = 22;

    private XsWireDescriptor() {
    }

    /** One decoded message. */
    public record Message(int type, int reqId, int txId, byte[] payload) {
        /** The payload split at NULs; a trailing NUL does not produce an empty last string. */
        public List<String> strings() {
            return splitStrings(payload);
        }
    }

    /** Encodes header and payload into one buffer (flipped, ready to write). */
    public static ByteBuffer encode(int type, int reqId, int txId, byte[] payload) {
        if (payload.length > XENSTORE_PAYLOAD_MAX) {
            throw new IllegalArgumentException("xenstore payload too long: len=" + payload.length);
        }
        ByteBuffer buf = ByteBuffer.allocate(HEADER_LENGTH + payload.length).order(ByteOrder.LITTLE_ENDIAN);
        buf.putInt(TYPE_OFFSET, type).putInt(REQ_ID_OFFSET, reqId).putInt(TX_ID_OFFSET, txId)
                .putInt(LEN_OFFSET, payload.length);
        buf.position(HEADER_LENGTH);
        buf.put(payload);
        buf.flip();
        return buf;
    }

    /** Reads {@code len} from a header (16 bytes, little-endian); callers validate it against the maximum. */
    public static int payloadLength(ByteBuffer header) {
        return header.order(ByteOrder.LITTLE_ENDIAN).getInt(LEN_OFFSET);
    }

    public static Message decode(ByteBuffer header, byte[] payload) {
        header.order(ByteOrder.LITTLE_ENDIAN);
        return new Message(header.getInt(TYPE_OFFSET), header.getInt(REQ_ID_OFFSET), header.getInt(TX_ID_OFFSET),
                payload);
    }

    /** Concatenates NUL-terminated strings: {@code strings("a", "b")} is "a\0b\0". */
    public static byte[] strings(String... parts) {
        int length = 0;
        byte[][] encoded = new byte[parts.length][];
        for (int i = 0; i < parts.length; i++) {
            encoded[i] = parts[i].getBytes(StandardCharsets.UTF_8);
            length += encoded[i].length + 1;
        }
        byte[] out = new byte[length];
        int at = 0;
        for (byte[] e : encoded) {
            System.arraycopy(e, 0, out, at, e.length);
            at += e.length + 1;
        }
        return out;
    }

    /** "path\0" followed by raw {@code value} bytes (XS_WRITE's payload: the value is not NUL-terminated). */
    public static byte[] pathAndValue(String path, byte[] value) {
        byte[] p = path.getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[p.length + 1 + value.length];
        System.arraycopy(p, 0, out, 0, p.length);
        System.arraycopy(value, 0, out, p.length + 1, value.length);
        return out;
    }

    public static List<String> splitStrings(byte[] payload) {
        List<String> out = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < payload.length; i++) {
            if (payload[i] == 0) {
                out.add(new String(payload, start, i - start, StandardCharsets.UTF_8));
                start = i + 1;
            }
        }
        if (start < payload.length) {
            out.add(new String(payload, start, payload.length - start, StandardCharsets.UTF_8));
        }
        return out;
    }

    /** The name of a message type for messages, e.g. "XS_READ". */
    public static String typeName(int type) {
        return switch (type) {
            case XS_CONTROL -> "XS_CONTROL";
            case XS_DIRECTORY -> "XS_DIRECTORY";
            case XS_READ -> "XS_READ";
            case XS_GET_PERMS -> "XS_GET_PERMS";
            case XS_WATCH -> "XS_WATCH";
            case XS_UNWATCH -> "XS_UNWATCH";
            case XS_TRANSACTION_START -> "XS_TRANSACTION_START";
            case XS_TRANSACTION_END -> "XS_TRANSACTION_END";
            case XS_INTRODUCE -> "XS_INTRODUCE";
            case XS_RELEASE -> "XS_RELEASE";
            case XS_GET_DOMAIN_PATH -> "XS_GET_DOMAIN_PATH";
            case XS_WRITE -> "XS_WRITE";
            case XS_MKDIR -> "XS_MKDIR";
            case XS_RM -> "XS_RM";
            case XS_SET_PERMS -> "XS_SET_PERMS";
            case XS_WATCH_EVENT -> "XS_WATCH_EVENT";
            case XS_ERROR -> "XS_ERROR";
            case XS_IS_DOMAIN_INTRODUCED -> "XS_IS_DOMAIN_INTRODUCED";
            case XS_RESUME -> "XS_RESUME";
            case XS_SET_TARGET -> "XS_SET_TARGET";
            case XS_RESET_WATCHES -> "XS_RESET_WATCHES";
            case XS_DIRECTORY_PART -> "XS_DIRECTORY_PART";
            default -> "type " + type;
        };
    }
}
