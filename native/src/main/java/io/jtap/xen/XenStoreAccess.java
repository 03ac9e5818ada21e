package io.jtap.xen;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;

/**
 * The node operations shared by a xenstore connection ({@link XenStore}) and a transaction view
 * ({@link XenStore.Transaction}). Paths follow {@link XenStorePath}: absolute, or relative to the connection's
 * {@code /local/domain/<domid>}; a malformed path fails with EINVAL before anything is sent.
 *
 * <p>Every failure is a {@link XenStoreException} carrying xenstored's error name. A missing node is
 * {@link Optional#empty()} for {@link #read} (and an empty list for {@link #directoryIfPresent}); {@link #directory},
 * {@link #getPermissions} and {@link #setPermissions} fail with ENOENT, and a node the caller may not see fails with
 * EACCES.
 */
public interface XenStoreAccess {
    /**
     * XS_READ. Values are bytes; an empty value is an empty array.
     *
     * @return the node's value, or empty when the node does not exist
     * @throws XenStoreException EACCES when the caller may not read the node (or, for a missing node, its nearest
     *     existing ancestor)
     */
    Optional<byte[]> read(String path) throws IOException;

    /** {@link #read} decoded as UTF-8. */
    default Optional<String> readString(String path) throws IOException {
        return read(path).map(bytes -> new String(bytes, StandardCharsets.UTF_8));
    }

    /**
     * XS_WRITE: sets the value, creating the node and any missing ancestors (a new node inherits its parent's
     * permissions; an unprivileged creator becomes its owner). Fires watches on the path and above.
     *
     * @throws XenStoreException E2BIG when path and value do not fit XENSTORE_PAYLOAD_MAX (4096 bytes)
     */
    void write(String path, byte[] value) throws IOException;

    /** {@link #write} of the UTF-8 encoding of {@code value}. */
    default void write(String path, String value) throws IOException {
        write(path, value.getBytes(StandardCharsets.UTF_8));
    }

    /** XS_MKDIR: creates the node with an empty value if it does not exist; an existing node is left alone. */
    void mkdir(String path) throws IOException;

    /**
     * XS_RM: removes the node and everything below it. Removing a missing node whose parent exists succeeds (as
     * xenstored does); a missing parent fails with ENOENT; removing "/" fails with EINVAL.
     */
    void rm(String path) throws IOException;

    /** XS_DIRECTORY: the children's names (not paths), in creation order. */
    List<String> directory(String path) throws IOException;

    /**
     * {@link #directory}, but a missing node lists as empty: for a backend's scan of {@code backend/vbd} or
     * {@code backend/vif}, which the toolstack creates with the first device.
     *
     * @throws XenStoreException for any error but ENOENT
     */
    default List<String> directoryIfPresent(String path) throws IOException {
        try {
            return directory(path);
        } catch (XenStoreException e) {
            if (e.is(XenStoreException.ENOENT)) {
                return List.of();
            }
            throw e;
        }
    }

    /** XS_GET_PERMS: the permission list; the first entry names the owner. */
    List<XenStorePermission> getPermissions(String path) throws IOException;

    /**
     * XS_SET_PERMS: replaces the permission list (at least one entry; the first names the owner). An unprivileged
     * domain must own the node and may not hand it to another owner (EPERM).
     */
    void setPermissions(String path, List<XenStorePermission> permissions) throws IOException;
}
