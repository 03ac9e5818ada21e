package io.jtap.xen.linux;


import io.jtap.xen.CLayoutProbe;
import io.jtap.xen.GrantCopySegmentDescriptor;
import io.jtap.xen.GrantStatus;
import io.jtap.xen.GrantTable;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Interoperability with the kernel's uAPI: compiles a C program against the installed {@code xen/gntdev.h},
 * {@code xen/evtchn.h} and Xen's {@code xen/grant_table.h}, and checks every ioctl number, struct size, field offset
 * and constant the Java code uses against what C computes. In CI ({@code CI=true}) a missing gcc or header fails the
 * test; elsewhere it is skipped with the reason.
 */
class KernelUapiLayoutTest {
    private static final List<String> HEADERS = List.of(
            "/usr/include/xen/gntdev.h", "/usr/include/xen/evtchn.h", "/usr/include/xen/gntalloc.h",
            "/usr/include/xen/grant_table.h");

    /** C expression → the Java value that must equal it. */
    private static Map<String, Long> expectations() {
        Map<String, Long> e = new LinkedHashMap<>();
        // gntdev ioctl numbers and argument layouts
        e.put("IOCTL_GNTDEV_MAP_GRANT_REF", GntdevDescriptor.IOCTL_GNTDEV_MAP_GRANT_REF);
        e.put("IOCTL_GNTDEV_UNMAP_GRANT_REF", GntdevDescriptor.IOCTL_GNTDEV_UNMAP_GRANT_REF);
        e.put("IOCTL_GNTDEV_SET_MAX_GRANTS", GntdevDescriptor.IOCTL_GNTDEV_SET_MAX_GRANTS);
        e.put("IOCTL_GNTDEV_SET_UNMAP_NOTIFY", GntdevDescriptor.IOCTL_GNTDEV_SET_UNMAP_NOTIFY);
        e.put("IOCTL_GNTDEV_GRANT_COPY", GntdevDescriptor.IOCTL_GNTDEV_GRANT_COPY);
        e.put("sizeof(struct ioctl_gntdev_grant_ref)", (long) GntdevDescriptor.GRANT_REF_SIZE);
        e.put("offsetof(struct ioctl_gntdev_grant_ref, domid)", (long) GntdevDescriptor.GRANT_REF_DOMID_OFFSET);
        e.put("offsetof(struct ioctl_gntdev_grant_ref, ref)", (long) GntdevDescriptor.GRANT_REF_REF_OFFSET);
        e.put("sizeof(struct ioctl_gntdev_map_grant_ref)", (long) GntdevDescriptor.MAP_GRANT_REF_SIZE);
        e.put("offsetof(struct ioctl_gntdev_map_grant_ref, count)", (long) GntdevDescriptor.MAP_GRANT_REF_COUNT_OFFSET);
        e.put("offsetof(struct ioctl_gntdev_map_grant_ref, index)", (long) GntdevDescriptor.MAP_GRANT_REF_INDEX_OFFSET);
        e.put("offsetof(struct ioctl_gntdev_map_grant_ref, refs)", (long) GntdevDescriptor.MAP_GRANT_REF_REFS_OFFSET);
        e.put("sizeof(struct ioctl_gntdev_unmap_grant_ref)", (long) GntdevDescriptor.UNMAP_GRANT_REF_SIZE);
        e.put("offsetof(struct ioctl_gntdev_unmap_grant_ref, index)",
                (long) GntdevDescriptor.UNMAP_GRANT_REF_INDEX_OFFSET);
        e.put("offsetof(struct ioctl_gntdev_unmap_grant_ref, count)",
                (long) GntdevDescriptor.UNMAP_GRANT_REF_COUNT_OFFSET);
        e.put("sizeof(struct ioctl_gntdev_set_max_grants)", (long) GntdevDescriptor.SET_MAX_GRANTS_SIZE);
        e.put("offsetof(struct ioctl_gntdev_set_max_grants, count)",
                (long) GntdevDescriptor.SET_MAX_GRANTS_COUNT_OFFSET);
        e.put("sizeof(struct ioctl_gntdev_unmap_notify)", (long) GntdevDescriptor.UNMAP_NOTIFY_SIZE);
        e.put("offsetof(struct ioctl_gntdev_unmap_notify, index)", (long) GntdevDescriptor.UNMAP_NOTIFY_INDEX_OFFSET);
        e.put("offsetof(struct ioctl_gntdev_unmap_notify, action)",
                (long) GntdevDescriptor.UNMAP_NOTIFY_ACTION_OFFSET);
        e.put("offsetof(struct ioctl_gntdev_unmap_notify, event_channel_port)",
                (long) GntdevDescriptor.UNMAP_NOTIFY_EVENT_CHANNEL_PORT_OFFSET);
        e.put("UNMAP_NOTIFY_CLEAR_BYTE", (long) GrantTable.UNMAP_NOTIFY_CLEAR_BYTE);
        e.put("UNMAP_NOTIFY_SEND_EVENT", (long) GrantTable.UNMAP_NOTIFY_SEND_EVENT);
        // grant copy
        e.put("sizeof(struct ioctl_gntdev_grant_copy)", (long) GrantCopySegmentDescriptor.IOCTL_GNTDEV_GRANT_COPY_SIZE);
        e.put("offsetof(struct ioctl_gntdev_grant_copy, count)",
                (long) GrantCopySegmentDescriptor.IOCTL_GNTDEV_GRANT_COPY_COUNT_OFFSET);
        e.put("offsetof(struct ioctl_gntdev_grant_copy, segments)",
                (long) GrantCopySegmentDescriptor.IOCTL_GNTDEV_GRANT_COPY_SEGMENTS_OFFSET);
        e.put("sizeof(struct gntdev_grant_copy_segment)", (long) GrantCopySegmentDescriptor.SEGMENT_SIZE);
        String seg = "struct gntdev_grant_copy_segment";
        for (String side : List.of("source", "dest")) {
            long base = side.equals("source") ? GrantCopySegmentDescriptor.SOURCE_OFFSET
                    : GrantCopySegmentDescriptor.DEST_OFFSET;
            e.put("offsetof(" + seg + ", " + side + ".virt)", base + GrantCopySegmentDescriptor.UNION_VIRT_OFFSET);
            e.put("offsetof(" + seg + ", " + side + ".foreign.ref)",
                    base + GrantCopySegmentDescriptor.UNION_FOREIGN_REF_OFFSET);
            e.put("offsetof(" + seg + ", " + side + ".foreign.offset)",
                    base + GrantCopySegmentDescriptor.UNION_FOREIGN_OFFSET_OFFSET);
            e.put("offsetof(" + seg + ", " + side + ".foreign.domid)",
                    base + GrantCopySegmentDescriptor.UNION_FOREIGN_DOMID_OFFSET);
        }
        e.put("offsetof(" + seg + ", len)", (long) GrantCopySegmentDescriptor.LEN_OFFSET);
        e.put("offsetof(" + seg + ", flags)", (long) GrantCopySegmentDescriptor.FLAGS_OFFSET);
        e.put("offsetof(" + seg + ", status)", (long) GrantCopySegmentDescriptor.STATUS_OFFSET);
        e.put("sizeof(((" + seg + " *)0)->len)", 2L);
        e.put("sizeof(((" + seg + " *)0)->status)", 2L);
        e.put("GNTCOPY_source_gref", (long) GrantCopySegmentDescriptor.GNTCOPY_source_gref);
        e.put("GNTCOPY_dest_gref", (long) GrantCopySegmentDescriptor.GNTCOPY_dest_gref);
        // GNTST_* from Xen's public grant_table.h
        e.put("GNTST_okay", (long) GrantStatus.GNTST_okay);
        e.put("GNTST_general_error", (long) GrantStatus.GNTST_general_error);
        e.put("GNTST_bad_domain", (long) GrantStatus.GNTST_bad_domain);
        e.put("GNTST_bad_gntref", (long) GrantStatus.GNTST_bad_gntref);
        e.put("GNTST_bad_handle", (long) GrantStatus.GNTST_bad_handle);
        e.put("GNTST_bad_virt_addr", (long) GrantStatus.GNTST_bad_virt_addr);
        e.put("GNTST_bad_dev_addr", (long) GrantStatus.GNTST_bad_dev_addr);
        e.put("GNTST_no_device_space", (long) GrantStatus.GNTST_no_device_space);
        e.put("GNTST_permission_denied", (long) GrantStatus.GNTST_permission_denied);
        e.put("GNTST_bad_page", (long) GrantStatus.GNTST_bad_page);
        e.put("GNTST_bad_copy_arg", (long) GrantStatus.GNTST_bad_copy_arg);
        e.put("GNTST_address_too_big", (long) GrantStatus.GNTST_address_too_big);
        e.put("GNTST_eagain", (long) GrantStatus.GNTST_eagain);
        e.put("GNTST_no_space", (long) GrantStatus.GNTST_no_space);
        // evtchn ioctl numbers and argument layouts
        e.put("IOCTL_EVTCHN_BIND_INTERDOMAIN", EvtchnDescriptor.IOCTL_EVTCHN_BIND_INTERDOMAIN);
        e.put("IOCTL_EVTCHN_BIND_UNBOUND_PORT", EvtchnDescriptor.IOCTL_EVTCHN_BIND_UNBOUND_PORT);
        e.put("IOCTL_EVTCHN_UNBIND", EvtchnDescriptor.IOCTL_EVTCHN_UNBIND);
        e.put("IOCTL_EVTCHN_NOTIFY", EvtchnDescriptor.IOCTL_EVTCHN_NOTIFY);
        e.put("IOCTL_EVTCHN_RESET", EvtchnDescriptor.IOCTL_EVTCHN_RESET);
        e.put("sizeof(struct ioctl_evtchn_bind_interdomain)", (long) EvtchnDescriptor.BIND_INTERDOMAIN_SIZE);
        e.put("offsetof(struct ioctl_evtchn_bind_interdomain, remote_domain)",
                (long) EvtchnDescriptor.BIND_INTERDOMAIN_REMOTE_DOMAIN_OFFSET);
        e.put("offsetof(struct ioctl_evtchn_bind_interdomain, remote_port)",
                (long) EvtchnDescriptor.BIND_INTERDOMAIN_REMOTE_PORT_OFFSET);
        e.put("sizeof(struct ioctl_evtchn_bind_unbound_port)", (long) EvtchnDescriptor.BIND_UNBOUND_PORT_SIZE);
        e.put("offsetof(struct ioctl_evtchn_bind_unbound_port, remote_domain)",
                (long) EvtchnDescriptor.BIND_UNBOUND_PORT_REMOTE_DOMAIN_OFFSET);
        e.put("sizeof(struct ioctl_evtchn_unbind)", (long) EvtchnDescriptor.UNBIND_SIZE);
        e.put("offsetof(struct ioctl_evtchn_unbind, port)", (long) EvtchnDescriptor.UNBIND_PORT_OFFSET);
        e.put("sizeof(struct ioctl_evtchn_notify)", (long) EvtchnDescriptor.NOTIFY_SIZE);
        e.put("offsetof(struct ioctl_evtchn_notify, port)", (long) EvtchnDescriptor.NOTIFY_PORT_OFFSET);
        e.put("sizeof(evtchn_port_t)", (long) EvtchnDescriptor.EVTCHN_PORT_SIZE);
        // gntalloc, used by the Linux contract tests to grant this domain's pages to itself
        e.put("IOCTL_GNTALLOC_ALLOC_GREF", LinuxGntallocFrontend.IOCTL_GNTALLOC_ALLOC_GREF);
        e.put("IOCTL_GNTALLOC_DEALLOC_GREF", LinuxGntallocFrontend.IOCTL_GNTALLOC_DEALLOC_GREF);
        e.put("sizeof(struct ioctl_gntalloc_alloc_gref)", (long) LinuxGntallocFrontend.ALLOC_GREF_SIZE);
        e.put("offsetof(struct ioctl_gntalloc_alloc_gref, domid)",
                (long) LinuxGntallocFrontend.ALLOC_GREF_DOMID_OFFSET);
        e.put("offsetof(struct ioctl_gntalloc_alloc_gref, flags)",
                (long) LinuxGntallocFrontend.ALLOC_GREF_FLAGS_OFFSET);
        e.put("offsetof(struct ioctl_gntalloc_alloc_gref, count)",
                (long) LinuxGntallocFrontend.ALLOC_GREF_COUNT_OFFSET);
        e.put("offsetof(struct ioctl_gntalloc_alloc_gref, index)",
                (long) LinuxGntallocFrontend.ALLOC_GREF_INDEX_OFFSET);
        e.put("offsetof(struct ioctl_gntalloc_alloc_gref, gref_ids)",
                (long) LinuxGntallocFrontend.ALLOC_GREF_GREF_IDS_OFFSET);
        e.put("sizeof(struct ioctl_gntalloc_dealloc_gref)", (long) LinuxGntallocFrontend.DEALLOC_GREF_SIZE);
        e.put("offsetof(struct ioctl_gntalloc_dealloc_gref, index)",
                (long) LinuxGntallocFrontend.DEALLOC_GREF_INDEX_OFFSET);
        e.put("offsetof(struct ioctl_gntalloc_dealloc_gref, count)",
                (long) LinuxGntallocFrontend.DEALLOC_GREF_COUNT_OFFSET);
        e.put("GNTALLOC_FLAG_WRITABLE", (long) LinuxGntallocFrontend.GNTALLOC_FLAG_WRITABLE);
        return e;
    }

    @Test
    void javaLayoutsEqualTheInstalledKernelHeaders(@TempDir Path dir) throws Exception {
        Map<String, Long> expected = expectations();
        CLayoutProbe.assertSameAsC(expected, compileAndRun(dir, expected), List.of(), "the kernel/Xen headers");
    }

    private static Map<String, Long> compileAndRun(Path dir, Map<String, Long> expected) throws Exception {
        return CLayoutProbe.evaluate(dir, "uapi_layout", HEADERS,
                "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <sys/ioctl.h>\n"
                        + "#include <xen/xen.h>\n#include <xen/grant_table.h>\n#include <xen/event_channel.h>\n"
                        + "#include <xen/gntdev.h>\n#include <xen/evtchn.h>\n#include <xen/gntalloc.h>\n",
                expected.keySet(), "gcc and linux-libc-dev + libxen-dev");
    }
}
