package io.jtap.ring.blkif;

import io.jtap.ring.SharedRingDescriptor;

/**
 * The guest ABI a block front end writes its ring in, named by the "protocol" node it writes to xenstore
 * ({@code xen/io/protocols.h}). A missing node means the back end's native ABI, x86_64 here.
 */
public enum BlkifAbi {
    X86_64("x86_64-abi", BlkifRequestDescriptor.X86_64, BlkifIndirectRequestDescriptor.X86_64,
        BlkifDiscardRequestDescriptor.X86_64, BlkifResponseDescriptor.LENGTH),
    X86_32("x86_32-abi", BlkifRequestDescriptor.X86_32, BlkifIndirectRequestDescriptor.X86_32,
        BlkifDiscardRequestDescriptor.X86_32, BlkifResponseDescriptor.X86_32_LENGTH);

    private final String protocol;
    private final BlkifRequestDescriptor request;
    private final BlkifIndirectRequestDescriptor indirectRequest;
    private final BlkifDiscardRequestDescriptor discardRequest;
    private final int responseLength;
    private final int entryLength;

    BlkifAbi(final String protocol, final BlkifRequestDescriptor request,
             final BlkifIndirectRequestDescriptor indirectRequest, final BlkifDiscardRequestDescriptor discardRequest,
             final int responseLength) {
        this.protocol = protocol;
        this.request = request;
        this.indirectRequest = indirectRequest;
        this.discardRequest = discardRequest;
        this.responseLength = responseLength;
        this.entryLength = Math.max(request.length(), responseLength);
    }

    /**
     * The ABI for a xenstore "protocol" value ({@code XEN_IO_PROTO_ABI_*}); null or empty means native.
     *
     * @throws IllegalArgumentException for an ABI this back end does not speak (e.g. "arm-abi")
     */
    public static BlkifAbi fromProtocol(final String protocol) {
        if (protocol == null || protocol.isEmpty()) {
            return X86_64;
        }
        for (final BlkifAbi abi : values()) {
            if (abi.protocol.equals(protocol)) {
                return abi;
            }
        }
        throw new IllegalArgumentException("unsupported blkif protocol: protocol=" + protocol);
    }

    /** {@code XEN_IO_PROTO_ABI_X86_64} / {@code XEN_IO_PROTO_ABI_X86_32}. */
    public String protocol() {
        return protocol;
    }

    public BlkifRequestDescriptor request() {
        return request;
    }

    public BlkifIndirectRequestDescriptor indirectRequest() {
        return indirectRequest;
    }

    public BlkifDiscardRequestDescriptor discardRequest() {
        return discardRequest;
    }

    /** {@code sizeof(struct blkif_response)}. */
    public int responseLength() {
        return responseLength;
    }

    /** {@code sizeof(union blkif_sring_entry)}: the larger of request and response. */
    public int entryLength() {
        return entryLength;
    }

    /** Entries in a blkif ring of {@code 1 << order} pages: {@code __CONST_RING_SIZE(blkif, 4096 << order)}. */
    public int ringSize(final int order) {
        return SharedRingDescriptor.ringSize(SharedRingDescriptor.ringBytes(order), entryLength);
    }
}
