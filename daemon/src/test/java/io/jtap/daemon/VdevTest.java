package io.jtap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Xen's virtual-device numbering (docs/misc/vbd-interface.txt), both ways. */
class VdevTest {

    @ParameterizedTest(name = "{0} = {1}")
    @CsvSource({
        // 202 << 8 | disk << 4 | partition
        "xvda, 51712, xvda",
        "xvdb, 51728, xvdb",
        "xvda1, 51713, xvda1",
        "xvdb15, 51743, xvdb15",
        "xvdp, 51952, xvdp",
        // 1 << 28 | disk << 8 | partition: disks or partitions from 16 on
        "xvdq, 268439552, xvdq",
        "xvda16, 268435472, xvda16",
        "xvdz, 268441856, xvdz",
        "xvdaa, 268442112, xvdaa",
        "xvdzz, 268614912, xvdzz",
        "xvdaaa, 268615168, xvdaaa",
        "xvdq255, 268439807, xvdq255",
        // numbers name the same devices
        "51728, 51728, xvdb",
        "51743, 51743, xvdb15",
        "268439552, 268439552, xvdq",
        // the extended encoding of a small disk is kept as given
        "268435712, 268435712, xvdb",
    })
    void namesAndNumbers(String text, int devid, String name) {
        Vdev v = Vdev.parse(text);
        assertEquals(devid, v.devid());
        assertEquals(name, v.name());
    }

    @Test
    void everyShortNameRoundTrips() {
        for (int disk = 0; disk < 16; disk++) {
            for (int part = 0; part < 16; part++) {
                Vdev v = Vdev.of(disk, part);
                assertEquals(202 << 8 | disk << 4 | part, v.devid());
                assertEquals(v, Vdev.parse(v.name()));
                assertEquals(v, Vdev.parse(Integer.toString(v.devid())));
            }
        }
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "xvd | expected xvd<letters>",
        "xvdB | value=xvdB",
        "hda | value=hda",
        "sdb | value=sdb",
        "xvda0 | partition must be 1..255",
        "xvda256 | partition must be 1..255",
        "xvda01 | partition must be 1..255",
        "0 | not an xvd device number",
        "12345 | not an xvd device number",
        "768 | not an xvd device number",
        "536870912 | not an xvd device number",
        "-1 | value=-1",
        "99999999999999999999 | value=99999999999999999999",
        "xvdb 1 | value=xvdb 1",
    })
    void badOnesNameTheValue(String text, String message) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Vdev.parse(text));
        assertTrue(e.getMessage().contains(message), e.getMessage());
    }
}
