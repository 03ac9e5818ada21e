package io.jtap.ring;

import io.jtap.ring.blkif.Blkif;
import io.jtap.ring.blkif.BlkifAbi;
import io.jtap.ring.blkif.BlkifDiscardRequestDescriptor;
import io.jtap.ring.blkif.BlkifIndirectRequestDescriptor;
import io.jtap.ring.blkif.BlkifRequestDescriptor;
import io.jtap.ring.blkif.BlkifResponseDescriptor;
import io.jtap.ring.blkif.BlkifSegmentDescriptor;
import io.jtap.ring.netif.Netif;
import io.jtap.ring.netif.NetifExtraInfoDescriptor;
import io.jtap.ring.netif.NetifRxRequestDescriptor;
import io.jtap.ring.netif.NetifRxResponseDescriptor;
import io.jtap.ring.netif.NetifTxRequestDescriptor;
import io.jtap.ring.netif.NetifTxResponseDescriptor;
import io.jtap.xen.CLayoutProbe;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Every layout number and constant the ring module uses, checked against Xen's public headers as gcc compiles them:
 * a generated C program prints sizeof/offsetof/macro values and {@code __CONST_RING_SIZE} at orders 0..4, for the
 * x86_64 ABI and (with {@code gcc -m32}) the x86_32 ABI. The program is native's {@link CLayoutProbe}, which the
 * kernel-header tests use too.
 */
class XenHeaderLayoutTest {
    /** One fact: a C expression and the value the Java code has for it in each ABI (null: not in that ABI). */
    private record Fact(String c, Long x86_64, Long x86_32) {
    }

    private static final List<Fact> FACTS = facts();

    private static List<Fact> facts() {
        final List<Fact> f = new ArrayList<>();
        // io/ring.h, for each ring type the headers define with DEFINE_RING_TYPES.
        for (final String ring : List.of("blkif", "netif_tx", "netif_rx")) {
            final String s = "struct " + ring + "_sring";
            both(f, "offsetof(" + s + ", req_prod)", SharedRingDescriptor.REQ_PROD_OFFSET);
            both(f, "offsetof(" + s + ", req_event)", SharedRingDescriptor.REQ_EVENT_OFFSET);
            both(f, "offsetof(" + s + ", rsp_prod)", SharedRingDescriptor.RSP_PROD_OFFSET);
            both(f, "offsetof(" + s + ", rsp_event)", SharedRingDescriptor.RSP_EVENT_OFFSET);
            both(f, "offsetof(" + s + ", pvt)", SharedRingDescriptor.PVT_OFFSET);
            both(f, "sizeof(((" + s + " *)0)->pvt)", SharedRingDescriptor.PVT_LENGTH);
            both(f, "offsetof(" + s + ", __pad)", SharedRingDescriptor.PAD_OFFSET);
            both(f, "sizeof(((" + s + " *)0)->__pad)", SharedRingDescriptor.PAD_LENGTH);
            both(f, "offsetof(" + s + ", ring)", SharedRingDescriptor.RING_OFFSET);
            both(f, "sizeof(RING_IDX)", 4);
        }
        both(f, "XEN_PAGE_SHIFT", SharedRingDescriptor.XEN_PAGE_SHIFT);
        for (int order = 0; order <= SharedRingDescriptor.XEN_MAX_RING_PAGE_ORDER; order++) {
            final String bytes = "(4096 << " + order + ")";
            f.add(new Fact("__CONST_RING_SIZE(blkif, " + bytes + ")", (long) BlkifAbi.X86_64.ringSize(order),
                (long) BlkifAbi.X86_32.ringSize(order)));
            both(f, "__CONST_RING_SIZE(netif_tx, " + bytes + ")", Netif.txRingSize(order));
            both(f, "__CONST_RING_SIZE(netif_rx, " + bytes + ")", Netif.rxRingSize(order));
        }

        // io/blkif.h
        f.add(new Fact("sizeof(union blkif_sring_entry)", (long) BlkifAbi.X86_64.entryLength(),
            (long) BlkifAbi.X86_32.entryLength()));
        both(f, "BLKIF_OP_READ", Blkif.BLKIF_OP_READ);
        both(f, "BLKIF_OP_WRITE", Blkif.BLKIF_OP_WRITE);
        both(f, "BLKIF_OP_WRITE_BARRIER", Blkif.BLKIF_OP_WRITE_BARRIER);
        both(f, "BLKIF_OP_FLUSH_DISKCACHE", Blkif.BLKIF_OP_FLUSH_DISKCACHE);
        both(f, "BLKIF_OP_RESERVED_1", Blkif.BLKIF_OP_RESERVED_1);
        both(f, "BLKIF_OP_DISCARD", Blkif.BLKIF_OP_DISCARD);
        both(f, "BLKIF_OP_INDIRECT", Blkif.BLKIF_OP_INDIRECT);
        both(f, "BLKIF_MAX_SEGMENTS_PER_REQUEST", Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST);
        both(f, "BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", Blkif.BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
        both(f, "(1 << XEN_PAGE_SHIFT) / sizeof(struct blkif_request_segment)",
            Blkif.BLKIF_SEGMENTS_PER_INDIRECT_PAGE);
        both(f, "BLKIF_DISCARD_SECURE", Blkif.BLKIF_DISCARD_SECURE);
        both(f, "BLKIF_RSP_EOPNOTSUPP", Blkif.BLKIF_RSP_EOPNOTSUPP);
        both(f, "BLKIF_RSP_ERROR", Blkif.BLKIF_RSP_ERROR);
        both(f, "BLKIF_RSP_OKAY", Blkif.BLKIF_RSP_OKAY);
        both(f, "VDISK_CDROM", Blkif.VDISK_CDROM);
        both(f, "VDISK_REMOVABLE", Blkif.VDISK_REMOVABLE);
        both(f, "VDISK_READONLY", Blkif.VDISK_READONLY);
        both(f, "sizeof(blkif_sector_t)", 8);
        both(f, "sizeof(blkif_vdev_t)", 2);
        both(f, "sizeof(grant_ref_t)", 4);

        both(f, "offsetof(struct blkif_request_segment, gref)", BlkifSegmentDescriptor.GREF_OFFSET);
        both(f, "offsetof(struct blkif_request_segment, first_sect)", BlkifSegmentDescriptor.FIRST_SECT_OFFSET);
        both(f, "offsetof(struct blkif_request_segment, last_sect)", BlkifSegmentDescriptor.LAST_SECT_OFFSET);
        both(f, "sizeof(struct blkif_request_segment)", BlkifSegmentDescriptor.LENGTH);

        final BlkifRequestDescriptor r64 = BlkifAbi.X86_64.request();
        final BlkifRequestDescriptor r32 = BlkifAbi.X86_32.request();
        both(f, "offsetof(struct blkif_request, operation)", BlkifRequestDescriptor.OPERATION_OFFSET);
        both(f, "offsetof(struct blkif_request, nr_segments)", BlkifRequestDescriptor.NR_SEGMENTS_OFFSET);
        both(f, "offsetof(struct blkif_request, handle)", BlkifRequestDescriptor.HANDLE_OFFSET);
        abi(f, "offsetof(struct blkif_request, id)", r64.idOffset(), r32.idOffset());
        abi(f, "offsetof(struct blkif_request, sector_number)", r64.sectorNumberOffset(), r32.sectorNumberOffset());
        abi(f, "offsetof(struct blkif_request, seg)", r64.segOffset(), r32.segOffset());
        abi(f, "sizeof(struct blkif_request)", r64.length(), r32.length());
        abi(f, "offsetof(struct blkif_request, seg[10])", r64.segmentOffset(0, 10), r32.segmentOffset(0, 10));

        final BlkifIndirectRequestDescriptor i64 = BlkifAbi.X86_64.indirectRequest();
        final BlkifIndirectRequestDescriptor i32 = BlkifAbi.X86_32.indirectRequest();
        both(f, "offsetof(struct blkif_request_indirect, operation)", BlkifIndirectRequestDescriptor.OPERATION_OFFSET);
        both(f, "offsetof(struct blkif_request_indirect, indirect_op)",
            BlkifIndirectRequestDescriptor.INDIRECT_OP_OFFSET);
        both(f, "offsetof(struct blkif_request_indirect, nr_segments)",
            BlkifIndirectRequestDescriptor.NR_SEGMENTS_OFFSET);
        both(f, "sizeof(((struct blkif_request_indirect *)0)->nr_segments)", 2);
        abi(f, "offsetof(struct blkif_request_indirect, id)", i64.idOffset(), i32.idOffset());
        abi(f, "offsetof(struct blkif_request_indirect, sector_number)", i64.sectorNumberOffset(),
            i32.sectorNumberOffset());
        abi(f, "offsetof(struct blkif_request_indirect, handle)", i64.handleOffset(), i32.handleOffset());
        abi(f, "offsetof(struct blkif_request_indirect, indirect_grefs)", i64.indirectGrefsOffset(),
            i32.indirectGrefsOffset());
        abi(f, "sizeof(struct blkif_request_indirect)", i64.length(), i32.length());
        f.add(new Fact("offsetof(struct blkif_request_indirect, pad)", null,
            (long) BlkifIndirectRequestDescriptor.X86_32_PAD_OFFSET));

        final BlkifDiscardRequestDescriptor d64 = BlkifAbi.X86_64.discardRequest();
        final BlkifDiscardRequestDescriptor d32 = BlkifAbi.X86_32.discardRequest();
        both(f, "offsetof(struct blkif_request_discard, operation)", BlkifDiscardRequestDescriptor.OPERATION_OFFSET);
        both(f, "offsetof(struct blkif_request_discard, flag)", BlkifDiscardRequestDescriptor.FLAG_OFFSET);
        both(f, "offsetof(struct blkif_request_discard, handle)", BlkifDiscardRequestDescriptor.HANDLE_OFFSET);
        abi(f, "offsetof(struct blkif_request_discard, id)", d64.idOffset(), d32.idOffset());
        abi(f, "offsetof(struct blkif_request_discard, sector_number)", d64.sectorNumberOffset(),
            d32.sectorNumberOffset());
        abi(f, "offsetof(struct blkif_request_discard, nr_sectors)", d64.nrSectorsOffset(), d32.nrSectorsOffset());
        abi(f, "sizeof(struct blkif_request_discard)", d64.length(), d32.length());

        both(f, "offsetof(struct blkif_response, id)", BlkifResponseDescriptor.ID_OFFSET);
        both(f, "offsetof(struct blkif_response, operation)", BlkifResponseDescriptor.OPERATION_OFFSET);
        both(f, "offsetof(struct blkif_response, status)", BlkifResponseDescriptor.STATUS_OFFSET);
        abi(f, "sizeof(struct blkif_response)", BlkifAbi.X86_64.responseLength(), BlkifAbi.X86_32.responseLength());

        // io/netif.h: no 64-bit fields, so one layout for every ABI.
        both(f, "XEN_NETIF_NR_SLOTS_MIN", Netif.XEN_NETIF_NR_SLOTS_MIN);
        both(f, "XEN_NETIF_MAX_TX_SIZE", Netif.XEN_NETIF_MAX_TX_SIZE);
        both(f, "NETTXF_csum_blank", Netif.NETTXF_csum_blank);
        both(f, "NETTXF_data_validated", Netif.NETTXF_data_validated);
        both(f, "NETTXF_more_data", Netif.NETTXF_more_data);
        both(f, "NETTXF_extra_info", Netif.NETTXF_extra_info);
        both(f, "NETRXF_data_validated", Netif.NETRXF_data_validated);
        both(f, "NETRXF_csum_blank", Netif.NETRXF_csum_blank);
        both(f, "NETRXF_more_data", Netif.NETRXF_more_data);
        both(f, "NETRXF_extra_info", Netif.NETRXF_extra_info);
        both(f, "NETRXF_gso_prefix", Netif.NETRXF_gso_prefix);
        both(f, "XEN_NETIF_EXTRA_TYPE_NONE", Netif.XEN_NETIF_EXTRA_TYPE_NONE);
        both(f, "XEN_NETIF_EXTRA_TYPE_GSO", Netif.XEN_NETIF_EXTRA_TYPE_GSO);
        both(f, "XEN_NETIF_EXTRA_TYPE_MCAST_ADD", Netif.XEN_NETIF_EXTRA_TYPE_MCAST_ADD);
        both(f, "XEN_NETIF_EXTRA_TYPE_MCAST_DEL", Netif.XEN_NETIF_EXTRA_TYPE_MCAST_DEL);
        both(f, "XEN_NETIF_EXTRA_TYPE_HASH", Netif.XEN_NETIF_EXTRA_TYPE_HASH);
        both(f, "XEN_NETIF_EXTRA_TYPE_MAX", Netif.XEN_NETIF_EXTRA_TYPE_MAX);
        both(f, "XEN_NETIF_EXTRA_FLAG_MORE", Netif.XEN_NETIF_EXTRA_FLAG_MORE);
        both(f, "XEN_NETIF_GSO_TYPE_NONE", Netif.XEN_NETIF_GSO_TYPE_NONE);
        both(f, "XEN_NETIF_GSO_TYPE_TCPV4", Netif.XEN_NETIF_GSO_TYPE_TCPV4);
        both(f, "XEN_NETIF_GSO_TYPE_TCPV6", Netif.XEN_NETIF_GSO_TYPE_TCPV6);
        both(f, "NETIF_RSP_DROPPED", Netif.NETIF_RSP_DROPPED);
        both(f, "NETIF_RSP_ERROR", Netif.NETIF_RSP_ERROR);
        both(f, "NETIF_RSP_OKAY", Netif.NETIF_RSP_OKAY);
        both(f, "NETIF_RSP_NULL", Netif.NETIF_RSP_NULL);
        both(f, "sizeof(union netif_tx_sring_entry)", Netif.TX_ENTRY_LENGTH);
        both(f, "sizeof(union netif_rx_sring_entry)", Netif.RX_ENTRY_LENGTH);

        both(f, "offsetof(struct netif_tx_request, gref)", NetifTxRequestDescriptor.GREF_OFFSET);
        both(f, "offsetof(struct netif_tx_request, offset)", NetifTxRequestDescriptor.OFFSET_OFFSET);
        both(f, "offsetof(struct netif_tx_request, flags)", NetifTxRequestDescriptor.FLAGS_OFFSET);
        both(f, "offsetof(struct netif_tx_request, id)", NetifTxRequestDescriptor.ID_OFFSET);
        both(f, "offsetof(struct netif_tx_request, size)", NetifTxRequestDescriptor.SIZE_OFFSET);
        both(f, "sizeof(struct netif_tx_request)", NetifTxRequestDescriptor.LENGTH);
        both(f, "offsetof(struct netif_tx_response, id)", NetifTxResponseDescriptor.ID_OFFSET);
        both(f, "offsetof(struct netif_tx_response, status)", NetifTxResponseDescriptor.STATUS_OFFSET);
        both(f, "sizeof(struct netif_tx_response)", NetifTxResponseDescriptor.LENGTH);
        both(f, "offsetof(struct netif_rx_request, id)", NetifRxRequestDescriptor.ID_OFFSET);
        both(f, "offsetof(struct netif_rx_request, pad)", NetifRxRequestDescriptor.PAD_OFFSET);
        both(f, "offsetof(struct netif_rx_request, gref)", NetifRxRequestDescriptor.GREF_OFFSET);
        both(f, "sizeof(struct netif_rx_request)", NetifRxRequestDescriptor.LENGTH);
        both(f, "offsetof(struct netif_rx_response, id)", NetifRxResponseDescriptor.ID_OFFSET);
        both(f, "offsetof(struct netif_rx_response, offset)", NetifRxResponseDescriptor.OFFSET_OFFSET);
        both(f, "offsetof(struct netif_rx_response, flags)", NetifRxResponseDescriptor.FLAGS_OFFSET);
        both(f, "offsetof(struct netif_rx_response, status)", NetifRxResponseDescriptor.STATUS_OFFSET);
        both(f, "sizeof(struct netif_rx_response)", NetifRxResponseDescriptor.LENGTH);

        final String x = "struct netif_extra_info";
        both(f, "offsetof(" + x + ", type)", NetifExtraInfoDescriptor.TYPE_OFFSET);
        both(f, "offsetof(" + x + ", flags)", NetifExtraInfoDescriptor.FLAGS_OFFSET);
        both(f, "offsetof(" + x + ", u)", NetifExtraInfoDescriptor.U_OFFSET);
        both(f, "sizeof(((" + x + " *)0)->u)", NetifExtraInfoDescriptor.U_LENGTH);
        both(f, "offsetof(" + x + ", u.gso.size)", NetifExtraInfoDescriptor.GSO_SIZE_OFFSET);
        both(f, "offsetof(" + x + ", u.gso.type)", NetifExtraInfoDescriptor.GSO_TYPE_OFFSET);
        both(f, "offsetof(" + x + ", u.gso.pad)", NetifExtraInfoDescriptor.GSO_PAD_OFFSET);
        both(f, "offsetof(" + x + ", u.gso.features)", NetifExtraInfoDescriptor.GSO_FEATURES_OFFSET);
        both(f, "offsetof(" + x + ", u.mcast.addr)", NetifExtraInfoDescriptor.MCAST_ADDR_OFFSET);
        both(f, "sizeof(((" + x + " *)0)->u.mcast.addr)", NetifExtraInfoDescriptor.MCAST_ADDR_LENGTH);
        both(f, "offsetof(" + x + ", u.hash.type)", NetifExtraInfoDescriptor.HASH_TYPE_OFFSET);
        both(f, "offsetof(" + x + ", u.hash.algorithm)", NetifExtraInfoDescriptor.HASH_ALGORITHM_OFFSET);
        both(f, "offsetof(" + x + ", u.hash.value)", NetifExtraInfoDescriptor.HASH_VALUE_OFFSET);
        both(f, "sizeof(((" + x + " *)0)->u.hash.value)", NetifExtraInfoDescriptor.HASH_VALUE_LENGTH);
        both(f, "sizeof(" + x + ")", NetifExtraInfoDescriptor.LENGTH);
        return List.copyOf(f);
    }

    private static void both(final List<Fact> f, final String c, final long value) {
        f.add(new Fact(c, value, value));
    }

    private static void abi(final List<Fact> f, final String c, final long x86_64, final long x86_32) {
        f.add(new Fact(c, x86_64, x86_32));
    }

    @ParameterizedTest
    @EnumSource(Gcc.Target.class)
    void javaLayoutMatchesXenHeaders(final Gcc.Target target, @TempDir final Path dir) throws Exception {
        Gcc.requireAvailable(target, dir);
        final Map<String, Long> java = new LinkedHashMap<>();
        for (final Fact fact : FACTS) {
            final Long value = target == Gcc.Target.X86_64 ? fact.x86_64() : fact.x86_32();
            if (value != null) {
                java.put(fact.c(), value);
            }
        }
        final List<String> headers = Stream.of("ring.h", "blkif.h", "netif.h")
            .map(h -> Gcc.XEN_IO_HEADERS.resolve(h).toString()).toList();
        final Map<String, Long> c = CLayoutProbe.evaluate(dir, "layout-" + target, headers,
            "#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n"
                + "#include <xen/io/ring.h>\n#include <xen/io/blkif.h>\n#include <xen/io/netif.h>\n\n",
            java.keySet(), List.of(), target.flags, "Debian libxen-dev, see scripts/install-deps.sh");
        CLayoutProbe.assertSameAsC(java, c, List.of(), target + " layouts in " + Gcc.XEN_IO_HEADERS);
        System.out.println("[" + target + "] checked " + java.size() + " layout facts against " + Gcc.XEN_IO_HEADERS);
    }
}
