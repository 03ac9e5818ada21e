package io.jtap.ring;

/**
 * A peer published a producer index that cannot be right: more entries than the ring holds are outstanding
 * (Xen: {@code RING_REQUEST_PROD_OVERFLOW} / {@code RING_RESPONSE_PROD_OVERFLOW}). The ring is broken; its owner
 * stops servicing it (and only it) and reports the peer.
 */
public final class RingOverflowException extends Exception {
    private static final long serialVersionUID = 1L;

    private final int producer;
    private final int consumer;
    private final int size;

    /**
     * @param what     which index is bogus, e.g. {@code "req_prod"}
     * @param producer the bogus producer index read from the shared ring
     * @param consumer the private index it was checked against ({@code rsp_prod_pvt} or {@code rsp_cons})
     * @param size     the ring size
     */
    public RingOverflowException(final String what, final int producer, final int consumer, final int size) {
        super("ring producer overflow: " + what + "=" + Integer.toUnsignedString(producer)
            + ", consumer=" + Integer.toUnsignedString(consumer) + ", outstanding="
            + Integer.toUnsignedString(producer - consumer) + ", size=" + size);
        this.producer = producer;
        this.consumer = consumer;
        this.size = size;
    }

    public int producer() {
        return producer;
    }

    public int consumer() {
        return consumer;
    }

    public int size() {
        return size;
    }
}
