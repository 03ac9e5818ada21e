package io.jtap.daemon;

import io.jtap.blkback.BlkbackService;
import io.jtap.formats.ImageFormats;
import io.jtap.netback.NetbackService;
import io.jtap.netback.TapFactory;
import io.jtap.netback.VifSwitch;
import io.jtap.tap.SimulatedTap;
import io.jtap.xen.XenPlatform;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What one jtap daemon serves on one platform: the block backend for {@code backend/<kind>} and the network backend
 * for {@code backend/vif}, as {@link ServeOptions} selects. Owns both services and, for the "switch" network mode,
 * the in-process switch; closes them in reverse order.
 */
final class Backends implements AutoCloseable {
    /** Frames each direction of a simulated TAP holds. */
    private static final int SIMULATED_TAP_FRAMES = 4096;

    private final BlkbackService blkback;
    private final NetbackService netback;
    private final VifSwitch vifSwitch;
    /** The simulated TAPs netback opened, by name, so that the simulated host side can be reached. */
    private final Map<String, SimulatedTap> simulatedTaps = new ConcurrentHashMap<>();

    private Backends(XenPlatform platform, ServeOptions options, boolean simulated) throws IOException {
        List<AutoCloseable> opened = new ArrayList<>();
        try {
            BlkbackService blk = null;
            if (options.blk()) {
                blk = new BlkbackService(platform, options.kind(), options.config(), ImageFormats.defaults(),
                        options.workers());
                opened.add(blk);
                blk.start();
            }
            VifSwitch sw = null;
            NetbackService net = null;
            if (!options.net().equals("off")) {
                TapFactory taps;
                if (options.net().equals("switch")) {
                    sw = VifSwitch.start();
                    opened.add(sw);
                    taps = sw;
                } else if (simulated) {
                    taps = name -> {
                        SimulatedTap tap = SimulatedTap.open(name, SIMULATED_TAP_FRAMES);
                        simulatedTaps.put(name, tap);
                        return tap;
                    };
                } else {
                    taps = TapFactory.linux();
                }
                net = NetbackService.start(platform, taps);
                opened.add(net);
            }
            this.blkback = blk;
            this.netback = net;
            this.vifSwitch = sw;
        } catch (IOException | RuntimeException e) {
            for (int i = opened.size() - 1; i >= 0; i--) {
                try {
                    opened.get(i).close();
                } catch (Exception suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    /** Starts the selected backends on {@code platform}; {@code simulated} picks simulated TAPs for "tap" mode. */
    static Backends start(XenPlatform platform, ServeOptions options, boolean simulated) throws IOException {
        return new Backends(platform, options, simulated);
    }

    BlkbackService blkback() {
        return blkback;
    }

    NetbackService netback() {
        return netback;
    }

    /** The host side of the simulated TAP named {@code name} (simulated "tap" mode only). */
    SimulatedTap simulatedHost(String name) {
        SimulatedTap tap = simulatedTaps.get(name);
        if (tap == null) {
            throw new IllegalStateException("no simulated TAP: name=" + name);
        }
        return tap.host();
    }

    /** One line per service for the daemon's start-up report. */
    List<String> describe(XenPlatform platform, ServeOptions options) {
        List<String> lines = new ArrayList<>();
        if (blkback != null) {
            lines.add(blkback.root() + " on " + platform.describe() + ", grants="
                    + options.config().grantMode().name().toLowerCase(Locale.ROOT) + ", workers="
                    + options.workers());
        }
        if (netback != null) {
            lines.add("/local/domain/" + platform.domid() + "/backend/vif on " + platform.describe() + ", net="
                    + options.net());
        }
        return lines;
    }

    @Override
    public void close() throws IOException {
        IOException failure = null;
        for (AutoCloseable c : new AutoCloseable[] {netback, vifSwitch, blkback}) {
            if (c == null) {
                continue;
            }
            try {
                c.close();
            } catch (Exception e) {
                if (failure == null) {
                    failure = e instanceof IOException io ? io : new IOException(e);
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        for (SimulatedTap tap : simulatedTaps.values()) {
            tap.host().close();
        }
        if (failure != null) {
            throw failure;
        }
    }
}
