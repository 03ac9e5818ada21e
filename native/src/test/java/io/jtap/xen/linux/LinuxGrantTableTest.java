package io.jtap.xen.linux;

import io.jtap.xen.GrantTable;
import io.jtap.xen.GrantTableContract;
import io.jtap.xen.GrantingFrontend;
import java.io.IOException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

/**
 * The grant-table contract on {@code /dev/xen/gntdev}, with this domain granting to itself through
 * {@code /dev/xen/gntalloc}. Skipped, with the reason printed, where there is no Xen.
 */
class LinuxGrantTableTest extends GrantTableContract {
    private LinuxGntallocFrontend frontend;

    @BeforeEach
    void requireXen() throws IOException {
        LinuxTestSupport.assumeAvailable("Linux grant table", LinuxGrantTable.availability());
        frontend = new LinuxGntallocFrontend(LinuxTestSupport.SELF_DOMID);
    }

    @AfterEach
    void closeFrontend() throws IOException {
        if (frontend != null) {
            frontend.close();
        }
    }

    @Override
    protected GrantTable openGrantTable() throws IOException {
        return LinuxGrantTable.open();
    }

    @Override
    protected GrantingFrontend frontend() {
        return frontend;
    }
}
