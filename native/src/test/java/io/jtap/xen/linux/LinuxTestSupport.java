package io.jtap.xen.linux;

import io.jtap.xen.Availability;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Assumptions;

/** Skips a test that needs a real Xen device, printing why it is unavailable. */
final class LinuxTestSupport {
    /** The domain the tests run in; the Linux contract tests need dom0 unless told otherwise. */
    static final int SELF_DOMID = Integer.getInteger("jtap.xen.domid", 0);

    /** Facilities whose skip reason was printed already: once per facility is enough to see it. */
    private static final Set<String> REPORTED = ConcurrentHashMap.newKeySet();

    private LinuxTestSupport() {
    }

    static void assumeAvailable(String facility, Availability availability) {
        if (!availability.isAvailable()) {
            String reason = facility + " unavailable, skipping: " + availability.unavailabilityCause().getMessage();
            if (REPORTED.add(facility)) {
                System.out.println(reason);
            }
            Assumptions.abort(reason);
        }
    }
}
