package io.jtap.xen;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The other side of a {@link GrantTableContract}: a domain that grants its pages to the backend under test. In the
 * simulation it is a simulated guest; on real Xen it can be the backend's own domain through {@code /dev/xen/gntalloc}.
 */
public interface GrantingFrontend {
    /** The granting domain, as the backend names it in {@link GrantTable#map}. */
    int domid();

    /**
     * Allocates {@code pages} zeroed pages and grants them to the backend.
     *
     * @return the refs, ref {@code i} for page {@code i} of {@code memory}, the frontend's own writable view
     */
    GrantedPages grant(int pages, boolean readOnly) throws IOException;

    /** Ends access to {@code ref}, as {@code gnttab_end_foreign_access_ref}; false when the backend still maps it. */
    boolean endAccess(int ref) throws IOException;

    /** A ref inside this domain's grant table that is not granted to anyone. */
    int unusedRef() throws IOException;

    /** A ref of this domain granted (writable) to a domain other than the backend's. */
    int refGrantedToAnotherDomain() throws IOException;

    /** A domid for which no domain exists. */
    int nonexistentDomid();

    /** Refs and the frontend's view of the granted memory. */
    record GrantedPages(int[] refs, ByteBuffer memory) {
        public ByteBuffer page(int i) {
            return memory.slice(i * GrantTable.PAGE_SIZE, GrantTable.PAGE_SIZE).order(ByteOrder.nativeOrder());
        }
    }
}
