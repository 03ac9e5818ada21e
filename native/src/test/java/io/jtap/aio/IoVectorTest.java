package io.jtap.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.jtap.xen.linux.LibC;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The short-transfer arithmetic both engines share: advancing an iovec over the bytes a short read or write moved,
 * and folding a transfer result into a slot ({@link IoSlots#progress}).
 */
class IoVectorTest {
    private static final long BASE = 0x10_0000L;

    /** Three segments: 4096 at BASE, 512 at BASE + 0x10000, 1024 at BASE + 0x20000. */
    private static IoSlots slotsWithVector() {
        IoSlots slots = new IoSlots(2, 4);
        IoVector v = slots.reserveVector();
        v.add(BASE, 4096).add(BASE + 0x10000, 512).add(BASE + 0x20000, 1024);
        slots.claim(v, 3, 8192, IoSlots.OP_READV, 99);
        return slots;
    }

    @ParameterizedTest(name = "advance {0}: first={1}, base=+{2}, len={3}")
    @CsvSource({
        // bytes, first segment left, its base offset from the segment's start, its length
        "1,    0, 1,    4095",
        "4095, 0, 4095, 1",
        "4096, 1, 0,    512",
        "4097, 1, 1,    511",
        "4608, 2, 0,    1024",
        "5000, 2, 392,  632",
    })
    void advanceSkipsWholeSegmentsAndTrimsThePartialOne(long bytes, int first, long baseOffset, long length) {
        try (IoSlots slots = slotsWithVector()) {
            IoVector v = slots.vectors[0];
            v.advance(bytes);
            long[] starts = {BASE, BASE + 0x10000, BASE + 0x20000};
            assertEquals(first, v.firstSegment());
            assertEquals(3 - first, v.remainingSegments());
            assertEquals(starts[first] + baseOffset, v.entryBase(first));
            assertEquals(length, v.entryLength(first));
            assertEquals(5632 - bytes, v.remaining());
            assertEquals(5632, v.length(), "the vector's length stays what the caller asked for");
        }
    }

    @Test
    void progressContinuesShortTransfersAndEndsOnCompletionErrorOrNoProgress() {
        try (IoSlots slots = slotsWithVector()) {
            assertEquals(IoSlots.CONTINUE, slots.progress(0, 100));
            assertEquals(8292, slots.offset[0], "the offset advances with the transfer");
            assertEquals(IoSlots.CONTINUE, slots.progress(0, 4096));
            assertEquals(5632, slots.progress(0, 1436), "the last piece completes the whole length");
        }
        try (IoSlots slots = slotsWithVector()) {
            assertEquals(IoSlots.CONTINUE, slots.progress(0, 100));
            assertEquals(-LibC.EIO, slots.progress(0, -LibC.EIO), "an error ends the operation");
        }
        try (IoSlots slots = slotsWithVector()) {
            assertEquals(BlockIoEngine.SHORT_READ_AT_EOF, slots.progress(0, 0), "a read of nothing is end of file");
        }
        try (IoSlots slots = new IoSlots(1, 1)) {
            IoVector v = slots.reserveVector().add(BASE, 512);
            slots.claim(v, 3, 0, IoSlots.OP_WRITEV, 1);
            assertEquals(-LibC.EIO, slots.progress(0, 0), "a write of nothing is an IO error, not a loop");
        }
    }

    @Test
    void advanceRefusesMoreThanRemains() {
        try (IoSlots slots = slotsWithVector()) {
            assertThrows(IllegalArgumentException.class, () -> slots.vectors[0].advance(5633));
            assertThrows(IllegalArgumentException.class, () -> slots.vectors[0].advance(0));
        }
    }

    @Test
    void aClosedEnginesVectorRefusesSegments() {
        IoSlots slots = new IoSlots(1, 1);
        IoVector v = slots.reserveVector();
        slots.close();
        assertThrows(IllegalStateException.class, () -> v.add(BASE, 512));
    }
}
