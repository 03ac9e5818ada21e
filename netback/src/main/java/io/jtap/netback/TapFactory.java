package io.jtap.netback;

import io.jtap.tap.LinuxTap;
import io.jtap.tap.TapDevice;
import java.io.IOException;

/**
 * Creates the host side of a vif: a TAP device named {@code vif<domid>.<handle>} (or the toolstack's {@code vifname}).
 * The daemon passes {@link #linux()}; tests pass a factory of {@code SimulatedTap}s. The returned device is
 * owned by netback, which closes it when the vif goes away.
 */
@FunctionalInterface
public interface TapFactory {
    TapDevice open(String name) throws IOException;

    /**
     * Creates the host side with room for up to {@code maxQueues} queues ({@link TapDevice#maxQueues()}), so that
     * each netback queue can read and write a TAP queue of its own; a factory that cannot returns a single-queue
     * device, and netback then reads the TAP on queue 0 and hands frames to the other queues.
     */
    default TapDevice open(String name, int maxQueues) throws IOException {
        return open(name);
    }

    /**
     * The daemon's factory: a multi-queue {@link LinuxTap} ({@code IFF_MULTI_QUEUE}) when more than one queue is
     * allowed.
     */
    static TapFactory linux() {
        return new TapFactory() {
            @Override
            public TapDevice open(String name) throws IOException {
                return LinuxTap.open(name);
            }

            @Override
            public TapDevice open(String name, int maxQueues) throws IOException {
                return LinuxTap.open(name, maxQueues);
            }
        };
    }
}
