package io.jtap.formats;

import java.io.IOException;

/**
 * An image that can check, and repair, its own metadata ({@code qemu-img check}); optional, so {@link Image} stays
 * small. Tools test {@code image instanceof Checkable}.
 *
 * <p>To repair an image that would otherwise refuse to open for writing (dirty lazy refcounts, the corrupt bit, or
 * features jtap only reads), open it with {@link OpenOptions#withCheck(boolean) withCheck(true)}, as QEMU opens with
 * {@code BDRV_O_CHECK}: it then opens writable, refuses writes until a repair has made it consistent, and
 * {@code check(true, true)} clears the dirty and corrupt bits once nothing is left to fix.
 */
public interface Checkable {

    /**
     * Walks all metadata, compares every host cluster's refcount with the references to it, and reports.
     * Flushes pending metadata first. Blocks other metadata operations of the image while it runs.
     *
     * @param repairLeaks free leaked clusters ({@code -r leaks})
     * @param repairAll   also fix corruptions that can be fixed safely, rebuilding the refcount structure when it is
     *                    damaged or stale ({@code -r all}); implies {@code repairLeaks}
     * @throws java.nio.file.AccessDeniedException when asked to repair an image opened read-only
     * @throws IOException                         when the file cannot be read at all (header, tables); findings
     *                                             about the metadata are reported in the result, not thrown
     */
    ImageCheck check(boolean repairLeaks, boolean repairAll) throws IOException;
}
