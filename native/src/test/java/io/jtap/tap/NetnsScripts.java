package io.jtap.tap;

/**
 * The socket peers that the namespace tests run with {@code python3 -u -c SCRIPT ARGS} inside a {@link Netns}: the
 * kernel's end of a TAP (native's LinuxTap tests, netback's end-to-end tests). Each prints a line when it is ready
 * and one per thing it saw, for {@link Netns.NsProcess} to wait for.
 */
public final class NetnsScripts {
    /** Binds argv[1]:argv[2], prints READY, then a line per datagram (UDP, source, port, hex) for argv[3] of them. */
    public static final String UDP_RECEIVER = String.join("\n",
            "import socket, sys",
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
            "s.bind((sys.argv[1], int(sys.argv[2])))",
            "s.settimeout(20)",
            "print('READY', flush=True)",
            "for _ in range(int(sys.argv[3])):",
            "    data, addr = s.recvfrom(65535)",
            "    print('UDP', addr[0], addr[1], data.hex(), flush=True)");

    /** Binds argv[1]:argv[2], sends the hex bytes argv[5] to argv[3]:argv[4], prints SENT. */
    public static final String UDP_SENDER = String.join("\n",
            "import socket, sys",
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
            "s.bind((sys.argv[1], int(sys.argv[2])))",
            "s.sendto(bytes.fromhex(sys.argv[5]), (sys.argv[3], int(sys.argv[4])))",
            "print('SENT', flush=True)");

    /** Accepts one connection, reads exactly n_in bytes, prints them, sends n_out pattern bytes, closes. */
    public static final String TCP_SERVER = String.join("\n",
            "import socket, sys",
            "host, port, n_in, n_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])",
            "ls = socket.socket()",
            "ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
            "ls.bind((host, port))",
            "ls.listen(1)",
            "ls.settimeout(20)",
            "print('READY', flush=True)",
            "c, addr = ls.accept()",
            "c.settimeout(20)",
            "buf = b''",
            "while len(buf) < n_in:",
            "    d = c.recv(65536)",
            "    if not d:",
            "        break",
            "    buf += d",
            "print('RECV', addr[0], addr[1], len(buf), buf.hex(), flush=True)",
            "c.sendall(bytes((i * 31 + 7) % 251 for i in range(n_out)))",
            "print('SENT', n_out, flush=True)",
            "c.close()");

    private NetnsScripts() {
    }
}
