package io.jtap.xen.linux;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.xen.Availability;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * On a machine without Xen the Linux facilities must say so, with a reason, rather than fail later or fall back: this
 * is what makes "the Linux tests were skipped" visible.
 */
class LinuxXenAvailabilityTest {
    private static void assertUnavailableWithReason(String device, Availability availability) {
        System.out.println(device + ": " + availability);
        assertFalse(availability.isAvailable(), device + " is missing, yet reported available");
        Throwable cause = availability.unavailabilityCause();
        assertNotNull(cause, "unavailable without a cause");
        assertTrue(cause.getMessage().contains(device), "the reason names the device: " + cause.getMessage());
    }

    @Test
    void grantTableIsUnavailableWithAReasonWhenGntdevIsMissing() {
        Assumptions.assumeFalse(Files.exists(Path.of(GntdevDescriptor.DEVICE)), "this machine has "
                + GntdevDescriptor.DEVICE);
        assertUnavailableWithReason(GntdevDescriptor.DEVICE, LinuxGrantTable.availability());
        assertFalse(LinuxGrantTable.isAvailable());
        UnsatisfiedLinkError e = assertThrows(UnsatisfiedLinkError.class, LinuxGrantTable::open);
        assertTrue(e.getMessage().contains(GntdevDescriptor.DEVICE), e.getMessage());
    }

    @Test
    void eventChannelsAreUnavailableWithAReasonWhenEvtchnIsMissing() {
        Assumptions.assumeFalse(Files.exists(Path.of(EvtchnDescriptor.DEVICE)), "this machine has "
                + EvtchnDescriptor.DEVICE);
        assertUnavailableWithReason(EvtchnDescriptor.DEVICE, LinuxEventChannels.availability());
        assertThrows(UnsatisfiedLinkError.class, LinuxEventChannels::open);
    }
}
