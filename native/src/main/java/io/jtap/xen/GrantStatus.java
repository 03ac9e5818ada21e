package io.jtap.xen;

/**
 * Grant-table operation status codes, {@code GNTST_*} from Xen's {@code public/grant_table.h} (installed as
 * {@code /usr/include/xen/grant_table.h}); the values are checked against that header by {@code KernelUapiLayoutTest}.
 * A {@link GrantCopyBatch} segment carries one of these after a copy.
 */
public final class GrantStatus {
    /** Normal return. */
    public static final short GNTST_okay = 0;
    /** General undefined error: Xen's answer to a ref not granted to the caller, ended, or written through r/o. */
    public static final short GNTST_general_error = -1;
    /** Unrecognised domain id. */
    public static final short GNTST_bad_domain = -2;
    /** Unrecognised or inappropriate grant ref: beyond the granting domain's grant table. */
    public static final short GNTST_bad_gntref = -3;
    public static final short GNTST_bad_handle = -4;
    public static final short GNTST_bad_virt_addr = -5;
    public static final short GNTST_bad_dev_addr = -6;
    public static final short GNTST_no_device_space = -7;
    public static final short GNTST_permission_denied = -8;
    public static final short GNTST_bad_page = -9;
    /** Copy arguments cross a page boundary. */
    public static final short GNTST_bad_copy_arg = -10;
    public static final short GNTST_address_too_big = -11;
    /** Operation not done; try again. */
    public static final short GNTST_eagain = -12;
    public static final short GNTST_no_space = -13;

    private static final String[] NAMES = {
        "GNTST_okay", "GNTST_general_error", "GNTST_bad_domain", "GNTST_bad_gntref", "GNTST_bad_handle",
        "GNTST_bad_virt_addr", "GNTST_bad_dev_addr", "GNTST_no_device_space", "GNTST_permission_denied",
        "GNTST_bad_page", "GNTST_bad_copy_arg", "GNTST_address_too_big", "GNTST_eagain", "GNTST_no_space",
    };

    private GrantStatus() {
    }

    /** The C name of {@code status}, e.g. {@code GNTST_bad_gntref}, or {@code GNTST_(n)} for an unknown code. */
    public static String name(int status) {
        return status <= 0 && -status < NAMES.length ? NAMES[-status] : "GNTST_(" + status + ")";
    }
}
