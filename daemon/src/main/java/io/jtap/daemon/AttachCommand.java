package io.jtap.daemon;

import io.jtap.blkback.DeviceParams;
import io.jtap.daemon.VbdToolstack.Device;
import io.jtap.daemon.VbdToolstack.Disk;
import io.jtap.daemon.VbdToolstack.Observed;
import io.jtap.daemon.VbdToolstack.ToolstackException;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.xen.BadXenStoreValueException;
import io.jtap.xen.XenStore;
import io.jtap.xen.XenbusState;
import io.jtap.xen.sim.SimulatedXen;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code jtap attach}: gives a running guest a disk served by {@code jtap serve}, doing the toolstack's part as libxl
 * does for {@code xl block-attach} ({@link VbdToolstack#create}), then waits until the backend has picked the device
 * up (InitWait or beyond). When nothing serves it in time, or the backend refuses it (state Closing with an
 * {@code error} node), both directories are removed again and the command fails; {@code --no-wait} leaves them and
 * returns at once.
 *
 * <p>Before writing anything it checks what it can: the format is one jtap serves, the vdev is an xvd device, and,
 * when the backend runs in this domain, that the image exists, is readable (writable for mode w), opens in that
 * format and mode, and is not already attached writable (or attached at all, for a writable attach) under the same
 * backend.
 */
@Command(name = "jtap attach", sortOptions = false,
        description = {"Attach a disk to a running guest without a toolstack: write the frontend and backend"
                + " directories as libxl does for xl block-attach, and wait until jtap serve picks the device up."},
        footer = {"", "Example:", "  jtap attach --domid 5 --target qcow2:/var/lib/jtap/data.qcow2 --vdev xvdb"})
final class AttachCommand implements Callable<Integer> {
    @Mixin
    ToolstackOptions common;

    @Option(names = {"-h", "--help"}, order = 20, usageHelp = true, description = "show this help and exit")
    boolean help;

    @Option(names = "--target", order = 2, paramLabel = "FORMAT:PATH", required = true,
            description = "the image, as format:path (raw:/var/lib/x.img, qcow2:/var/lib/x.qcow2) or a bare path"
                    + " (raw); a relative path is made absolute")
    String target;

    @Option(names = "--vdev", order = 3, paramLabel = "xvdb|51728",
            description = "the guest's device name or number; default: the first free xvd disk")
    String vdev;

    @Option(names = "--mode", order = 4, paramLabel = "r|w",
            description = "read-only or read-write; default: w (r for a cdrom)")
    String mode;

    @Option(names = "--device-type", order = 5, paramLabel = "disk|cdrom", defaultValue = "disk",
            description = "default: ${DEFAULT-VALUE}")
    String deviceType;

    @Option(names = "--no-wait", order = 6,
            description = "write the directories and return without waiting for a backend")
    boolean noWait;

    private final PrintStream out;
    private final PrintStream err;
    private final SimulatedXen world;
    private final ImageFormats formats;

    /** @param world the simulated Xen to use for {@code --xen=simulated} (in-process callers), or null */
    AttachCommand(PrintStream out, PrintStream err, SimulatedXen world, ImageFormats formats) {
        this.out = out;
        this.err = err;
        this.world = world;
        this.formats = formats;
    }

    @Override
    public Integer call() throws Exception {
        common.checkXen();
        int domid = common.guestDomid();
        int backendDomid = common.backendDomid();
        String kind = common.kind();
        Duration timeout = common.timeout();
        String type = deviceType(deviceType);
        String m = mode(mode, type);
        Target t = target(target);
        Optional<Vdev> wanted = vdev == null ? Optional.empty() : Optional.of(parseVdev(vdev));

        try (ToolstackOptions.ToolstackConnection connection = common.connect(world)) {
            XenStore xs = connection.xs();
            OptionalLong size = OptionalLong.empty();
            Optional<Integer> self = xs.readString("domid").map(String::trim).filter(s -> s.matches("[0-9]+"))
                    .map(Integer::valueOf);
            if (self.isPresent() && self.get() == backendDomid) {
                size = OptionalLong.of(checkImage(t, m));
                checkNotAttached(xs, backendDomid, kind, t, m);
            } else {
                err.println("jtap attach: the image is not checked here: the backend runs in domain " + backendDomid
                        + ", this is " + (self.isPresent() ? "domain " + self.get()
                        : "a domain whose id is unknown (no xenstore node 'domid')"));
            }
            Vdev v = wanted.isPresent() ? wanted.get() : firstFree(xs, backendDomid, kind, domid);
            Device d = new Device(backendDomid, kind, domid, v);
            VbdToolstack.create(xs, d, new Disk(t.params(), m, type));
            String what = "domid=" + domid + ", vdev=" + v.name() + ", devid=" + v.devid() + ", target=" + t.params()
                    + ", mode=" + m + ", device-type=" + type + (size.isPresent() ? ", size=" + size.getAsLong() : "")
                    + ", backend=" + d.backendPath() + ", frontend=" + d.frontendPath();
            if (noWait) {
                out.println("jtap attach: written, not waiting for a backend: " + what);
                return 0;
            }
            // Anything after Initialising ends the wait: InitWait..Connected is served, Closing/Closed refused.
            Observed seen = VbdToolstack.awaitBackend(xs, d, s -> s.value() >= XenbusState.InitWait.value(),
                    timeout);
            if (seen.reached() && seen.state().get() != XenbusState.Closing
                    && seen.state().get() != XenbusState.Closed) {
                out.println("jtap attach: attached: " + what + ", state=" + seen.describe() + ", waited_ms="
                        + seen.waited().toMillis());
                return 0;
            }
            String why;
            if (seen.state().isEmpty()) {
                why = "the device's directories disappeared while waiting for the backend: " + what;
            } else if (seen.reached()) {
                why = "the backend refused the device: state=" + seen.describe() + ", error="
                        + xs.readString(d.backendPath() + "/error").orElse("(none)") + ", " + what;
            } else {
                why = "no backend picked the device up in " + timeout.toMillis() + " ms: state=" + seen.describe()
                        + " (is jtap serve --backend-kind=" + kind + " running in domain " + backendDomid + "?), "
                        + what;
            }
            List<String> removed = VbdToolstack.remove(xs, d);
            throw new ToolstackException(why + "; removed " + (removed.isEmpty() ? "nothing (already gone)"
                    : String.join(" and ", removed)));
        }
    }

    /** The image as the backend will read it: the {@code params} value and its parts. */
    record Target(String params, String format, Path path) {
    }

    private Target target(String text) throws UsageException {
        String format = "raw";
        String file = text;
        int colon = text.indexOf(':');
        if (colon > 0 && !text.startsWith("/")) {
            format = text.substring(0, colon);
            file = text.substring(colon + 1);
        }
        if (formats.find(format).isEmpty()) {
            throw new UsageException("bad --target: unknown format: value=" + text + ", format=" + format
                    + ", known=" + formats.names());
        }
        if (file.isEmpty()) {
            throw new UsageException("bad --target: no path: value=" + text + ", expected FORMAT:PATH");
        }
        Path path;
        try {
            path = Path.of(file).toAbsolutePath().normalize();
        } catch (java.nio.file.InvalidPathException e) {
            throw new UsageException("bad --target: value=" + text + ", " + e.getMessage());
        }
        String params = format + ":" + path;
        try {
            // The backend parses it the same way; anything it would refuse is refused here.
            DeviceParams.parse("--target", params, null, null);
        } catch (BadXenStoreValueException e) {
            throw new UsageException("bad --target: value=" + text + ", " + e.getMessage());
        }
        return new Target(params, format, path);
    }

    private static String deviceType(String value) throws UsageException {
        if (!value.equals("disk") && !value.equals("cdrom")) {
            throw new UsageException("bad --device-type: value=" + value + ", expected disk or cdrom");
        }
        return value;
    }

    /** libxl's access strings too: "ro" and "rw". A cdrom is read-only. */
    private static String mode(String value, String type) throws UsageException {
        if (value == null) {
            return type.equals("cdrom") ? "r" : "w";
        }
        String m = switch (value) {
            case "r", "ro" -> "r";
            case "w", "rw" -> "w";
            default -> throw new UsageException("bad --mode: value=" + value + ", expected r or w");
        };
        if (m.equals("w") && type.equals("cdrom")) {
            throw new UsageException("bad --mode: value=" + value + ", a cdrom is read-only");
        }
        return m;
    }

    private static Vdev parseVdev(String value) throws UsageException {
        try {
            return Vdev.parse(value);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage().replace("bad vdev:", "bad --vdev:"));
        }
    }

    /**
     * The image exists, the backend's domain (this one) may open it in the mode asked for, and it opens in its
     * format and that mode, as the backend will open it (a qcow2 image marked dirty or corrupt opens read-only but
     * not for writing). Returns its virtual size in bytes.
     */
    private long checkImage(Target t, String m) throws IOException {
        Path p = t.path();
        if (!Files.exists(p)) {
            throw new ToolstackException("image does not exist: path=" + p + ", target=" + t.params());
        }
        if (!Files.isRegularFile(p) && !isBlockDevice(p)) {
            throw new ToolstackException("image is neither a file nor a block device: path=" + p);
        }
        if (!Files.isReadable(p) || (m.equals("w") && !Files.isWritable(p))) {
            throw new ToolstackException("image is not " + (m.equals("w") ? "writable" : "readable")
                    + " here: path=" + p + ", mode=" + m);
        }
        ImageFormat format = formats.get(t.format());
        try (Image image = format.open(p, OpenOptions.defaults().withReadOnly(m.equals("r")))) {
            return image.size();
        } catch (IOException | RuntimeException e) {
            throw new ToolstackException("image does not open as " + t.format() + ": path=" + p + ", mode=" + m
                    + ", error=" + e.getMessage());
        }
    }

    /** Whether {@code p} is a block device (S_IFBLK in st_mode), e.g. an LVM volume. */
    private static boolean isBlockDevice(Path p) {
        try {
            return Files.getAttribute(p, "unix:mode") instanceof Integer mode && (mode & 0xf000) == 0x6000;
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return false;
        }
    }

    /**
     * Refuses an image that a device under the same backend already uses, when either is writable: two writers (or a
     * writer and a reader with its own cache) corrupt an image.
     */
    private static void checkNotAttached(XenStore xs, int backendDomid, String kind, Target t, String m)
            throws IOException {
        String root = "/local/domain/" + backendDomid + "/backend/" + kind;
        Path mine = t.path().toRealPath();
        for (String domid : xs.directoryIfPresent(root)) {
            for (String devid : xs.directoryIfPresent(root + "/" + domid)) {
                String dir = root + "/" + domid + "/" + devid;
                Optional<String> params = xs.readString(dir + "/params");
                Optional<String> otherMode = xs.readString(dir + "/mode");
                if (params.isEmpty()) {
                    continue;
                }
                Path other;
                try {
                    other = DeviceParams.parse(dir, params.get(), null, null).path();
                } catch (BadXenStoreValueException e) {
                    continue;
                }
                boolean same;
                try {
                    same = Files.exists(other) && Files.isSameFile(mine, other);
                } catch (IOException e) {
                    same = false;
                }
                boolean otherWritable = !otherMode.orElse("w").equals("r");
                if (same && (m.equals("w") || otherWritable)) {
                    throw new ToolstackException("image already attached: path=" + mine + ", by=" + dir + ", mode="
                            + otherMode.orElse("w") + " (two devices on one image, one of them writable, corrupt"
                            + " it)");
                }
            }
        }
    }

    /** The first xvd disk (no partition) with neither directory, as a user would pick the next letter. */
    private static Vdev firstFree(XenStore xs, int backendDomid, String kind, int domid) throws IOException {
        for (int disk = 0; disk <= Vdev.MAX_SHORT; disk++) {
            Vdev v = Vdev.of(disk, 0);
            if (!VbdToolstack.exists(xs, new Device(backendDomid, kind, domid, v))) {
                return v;
            }
        }
        throw new ToolstackException("no free xvd disk among xvda..xvdp: domid=" + domid + "; name one with --vdev");
    }
}
