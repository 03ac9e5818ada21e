package io.jtap.xen.linux;

import io.jtap.xen.Availability;
import java.nio.file.Files;
import java.nio.file.Path;

/** Whether a {@code /dev/xen/*} device can be opened here, and if not, why. */
final class XenDevices {
    private XenDevices() {
    }

    static Availability probe(String device) {
        Throwable libc = LibC.loadFailure();
        if (libc != null) {
            return Availability.unavailable(libc);
        }
        if (!Files.exists(Path.of(device))) {
            return Availability.unavailable(device + " does not exist: not running in a Xen domain, or the Linux "
                    + "Xen driver for it is not loaded");
        }
        try {
            Syscalls.close(Syscalls.open(device, LibC.O_RDWR));
            return Availability.available();
        } catch (Syscalls.ErrnoException e) {
            return Availability.unavailable(e);
        }
    }
}
