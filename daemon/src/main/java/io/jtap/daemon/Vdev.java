package io.jtap.daemon;

/**
 * A Xen PV disk's virtual device: its name as a guest sees it ({@code xvdb}, {@code xvdb3}, {@code xvdaa}) and the
 * number that names its xenstore directories ({@code device/vbd/<devid>}, {@code backend/vbd/<domid>/<devid>}).
 * Xen: {@code docs/misc/vbd-interface.txt}; libxl: {@code libxl__device_disk_dev_number}.
 *
 * <pre>
 *   202 &lt;&lt; 8 | disk &lt;&lt; 4 | partition      xvd, disks and partitions up to 15 (xvda = 51712, xvdb = 51728)
 *   1 &lt;&lt; 28 | disk &lt;&lt; 8 | partition       xvd, disks or partitions 16 onwards (xvdq = 268439552)
 * </pre>
 *
 * Disk letters count bijectively in base 26, as Linux names them: a..z are 0..25, aa is 26, zz is 701, aaa is 702.
 * Only xvd devices: the hd and sd numberings are for emulated disks of HVM guests, which PV blkfront does not use.
 *
 * @param devid     the virtual-device number
 * @param disk      the disk index (0 for xvda)
 * @param partition the partition, 0 for the whole disk
 */
record Vdev(int devid, int disk, int partition) {
    /** Xen's major number for xvd devices in the short encoding. */
    static final int XVD_MAJOR = 202;
    /** Bit 28 marks the extended encoding. */
    static final int EXTENDED = 1 << 28;
    /** The extended encoding has 20 bits of disk index ... */
    static final int MAX_EXTENDED_DISK = (1 << 20) - 1;
    /** ... and 8 bits of partition. */
    static final int MAX_EXTENDED_PARTITION = 255;
    /** The short encoding has 4 bits of each. */
    static final int MAX_SHORT = 15;

    private static final String EXPECTED = "expected xvd<letters>[<partition>] (e.g. xvdb, xvdb1) or its number"
            + " (e.g. 51728)";

    /** The device for a disk index and partition, in the short encoding when both fit. */
    static Vdev of(int disk, int partition) {
        if (disk < 0 || disk > MAX_EXTENDED_DISK || partition < 0 || partition > MAX_EXTENDED_PARTITION) {
            throw new IllegalArgumentException("xvd out of range: disk=" + disk + ", partition=" + partition);
        }
        int devid = disk <= MAX_SHORT && partition <= MAX_SHORT ? XVD_MAJOR << 8 | disk << 4 | partition
                : EXTENDED | disk << 8 | partition;
        return new Vdev(devid, disk, partition);
    }

    /**
     * Parses a name ({@code xvdb}, {@code xvdb1}, {@code xvdaa}) or a number (decimal, an xvd encoding).
     *
     * @throws IllegalArgumentException naming the value and what was expected
     */
    static Vdev parse(String text) {
        if (text == null || text.isEmpty()) {
            throw new IllegalArgumentException("bad vdev: value=" + text + ", " + EXPECTED);
        }
        if (text.chars().allMatch(c -> c >= '0' && c <= '9')) {
            return ofNumber(text);
        }
        if (!text.matches("xvd[a-z]+[0-9]*")) {
            throw new IllegalArgumentException("bad vdev: value=" + text + ", " + EXPECTED);
        }
        int end = 3;
        while (end < text.length() && Character.isLetter(text.charAt(end))) {
            end++;
        }
        String letters = text.substring(3, end);
        String digits = text.substring(end);
        long disk = 0;
        for (int i = 0; i < letters.length(); i++) {
            disk = disk * 26 + (letters.charAt(i) - 'a' + 1);
            if (disk - 1 > MAX_EXTENDED_DISK) {
                throw new IllegalArgumentException("bad vdev: value=" + text + ", disk index above "
                        + MAX_EXTENDED_DISK);
            }
        }
        int partition = 0;
        if (!digits.isEmpty()) {
            if (digits.startsWith("0") || digits.length() > 3 || Integer.parseInt(digits) > MAX_EXTENDED_PARTITION) {
                throw new IllegalArgumentException("bad vdev: value=" + text + ", partition must be 1.."
                        + MAX_EXTENDED_PARTITION);
            }
            partition = Integer.parseInt(digits);
        }
        return of((int) (disk - 1), partition);
    }

    private static Vdev ofNumber(String text) {
        long n;
        try {
            n = Long.parseLong(text);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad vdev: value=" + text + ", " + EXPECTED);
        }
        // The number is kept as given, also an extended encoding of a disk the short one could name.
        if ((n & EXTENDED) != 0 && n < (EXTENDED << 1)) {
            return new Vdev((int) n, (int) (n >> 8) & MAX_EXTENDED_DISK, (int) n & MAX_EXTENDED_PARTITION);
        }
        if (n >> 8 == XVD_MAJOR) {
            return new Vdev((int) n, (int) (n >> 4) & MAX_SHORT, (int) n & MAX_SHORT);
        }
        throw new IllegalArgumentException("bad vdev: value=" + text + ", not an xvd device number"
                + " (202 << 8 | disk << 4 | partition, or 1 << 28 | disk << 8 | partition)");
    }

    /** The guest's name for the device: {@code xvdb}, {@code xvdb1}, {@code xvdaa}. */
    String name() {
        StringBuilder letters = new StringBuilder();
        for (int d = disk + 1; d > 0; d = (d - 1) / 26) {
            letters.append((char) ('a' + (d - 1) % 26));
        }
        return "xvd" + letters.reverse() + (partition == 0 ? "" : Integer.toString(partition));
    }

    @Override
    public String toString() {
        return name() + " (" + devid + ")";
    }
}
