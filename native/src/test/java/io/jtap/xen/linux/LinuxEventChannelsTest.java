package io.jtap.xen.linux;

import io.jtap.xen.EventChannels;
import io.jtap.xen.EventChannelsContract;
import java.io.IOException;
import org.junit.jupiter.api.BeforeEach;

/**
 * The event-channel contract on {@code /dev/xen/evtchn}, both ends in this domain (Xen lets a domain bind to its own
 * unbound port). Skipped, with the reason printed, where there is no Xen.
 */
class LinuxEventChannelsTest extends EventChannelsContract {
    @BeforeEach
    void requireXen() {
        LinuxTestSupport.assumeAvailable("Linux event channels", LinuxEventChannels.availability());
    }

    @Override
    protected EventChannels openBackend() throws IOException {
        return LinuxEventChannels.open();
    }

    @Override
    protected EventChannels openFrontend() throws IOException {
        return LinuxEventChannels.open();
    }

    @Override
    protected int backendDomid() {
        return LinuxTestSupport.SELF_DOMID;
    }

    @Override
    protected int frontendDomid() {
        return LinuxTestSupport.SELF_DOMID;
    }

    @Override
    protected int nonexistentDomid() {
        return 30000;
    }
}
