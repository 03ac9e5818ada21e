package io.jtap.blkback;

import io.jtap.xen.BadXenStoreValueException;
import java.nio.file.Path;

/**
 * A device's configuration as the toolstack wrote it in the backend directory: {@code params}, {@code mode},
 * {@code device-type}. The image format comes from {@code params} ({@code format:path}; a bare path is raw) and is
 * never probed: a guest can write any header into a raw image.
 *
 * @param format   image format registry name, e.g. "raw", "qcow2"
 * @param path     the image file
 * @param readOnly {@code mode} is "r" (or the device is a CD-ROM)
 * @param cdrom    {@code device-type} is "cdrom"
 */
public record DeviceParams(String format, Path path, boolean readOnly, boolean cdrom) {

    /**
     * Parses the three nodes' values.
     *
     * @param dir the backend directory, for error messages
     * @throws BadXenStoreValueException naming the node and value that cannot be used
     */
    public static DeviceParams parse(String dir, String params, String mode, String deviceType)
            throws BadXenStoreValueException {
        if (params == null || params.isBlank()) {
            throw new BadXenStoreValueException(dir + "/params", params, "expected format:path or a path");
        }
        String format = "raw";
        String file = params.trim();
        int colon = file.indexOf(':');
        if (colon > 0 && !file.startsWith("/")) {
            format = file.substring(0, colon);
            file = file.substring(colon + 1);
        }
        if (!format.matches("[a-z0-9_-]+") || file.isEmpty() || !file.startsWith("/")) {
            throw new BadXenStoreValueException(dir + "/params", params,
                    "expected format:/absolute/path or /absolute/path");
        }
        boolean readOnly;
        if (mode == null || mode.equals("w")) {
            readOnly = false;
        } else if (mode.equals("r")) {
            readOnly = true;
        } else {
            throw new BadXenStoreValueException(dir + "/mode", mode, "expected r or w");
        }
        boolean cdrom;
        if (deviceType == null || deviceType.equals("disk")) {
            cdrom = false;
        } else if (deviceType.equals("cdrom")) {
            cdrom = true;
        } else {
            throw new BadXenStoreValueException(dir + "/device-type", deviceType, "expected disk or cdrom");
        }
        return new DeviceParams(format, Path.of(file), readOnly || cdrom, cdrom);
    }
}
