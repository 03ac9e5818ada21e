package io.jtap.xen.sim;

import io.jtap.xen.GrantingFrontend;
import java.io.IOException;
import java.util.Arrays;

/** A simulated guest granting its pages to a backend domain, for {@code GrantTableContract}. */
public final class SimulatedGrantingFrontend implements GrantingFrontend {
    private final SimulatedDomain guest;
    private final int backendDomid;

    public SimulatedGrantingFrontend(SimulatedDomain guest, int backendDomid) {
        this.guest = guest;
        this.backendDomid = backendDomid;
    }

    @Override
    public int domid() {
        return guest.domid();
    }

    @Override
    public GrantedPages grant(int pages, boolean readOnly) throws IOException {
        GuestPages memory = guest.allocatePages(pages);
        return new GrantedPages(memory.grantAll(backendDomid, readOnly), memory.buffer());
    }

    @Override
    public boolean endAccess(int ref) {
        return guest.endAccess(ref);
    }

    /** The last entry of the first grant-table frame, while it is free. */
    @Override
    public int unusedRef() {
        int ref = SimulatedDomain.ENTRIES_PER_FRAME - 1;
        if (Arrays.stream(guest.grantedRefs()).anyMatch(r -> r == ref)) {
            throw new IllegalStateException("too many grants for unusedRef(): ref=" + ref + " is granted");
        }
        return ref;
    }

    @Override
    public int refGrantedToAnotherDomain() throws IOException {
        int other = backendDomid + 1000;
        return guest.grantAccess(other, guest.allocatePages(1).frame(0), false);
    }

    @Override
    public int nonexistentDomid() {
        return 30000;
    }
}
