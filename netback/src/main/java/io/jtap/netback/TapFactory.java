package io.jtap.netback;

import io.jtap.tap.TapDevice;
import java.io.IOException;

/**
 * Creates the host side of a vif: a TAP device named {@code vif<domid>.<handle>} (or the toolstack's {@code vifname}).
 * The daemon passes {@code LinuxTap::open}; tests pass a factory of {@code SimulatedTap}s. The returned device is
 * owned by netback, which closes it when the vif goes away.
 */
@FunctionalInterface
public interface TapFactory {
    TapDevice open(String name) throws IOException;
}
