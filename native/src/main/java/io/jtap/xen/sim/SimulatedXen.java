package io.jtap.xen.sim;

import io.jtap.xen.EventChannels;
import io.jtap.xen.GrantTable;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.XenStore;
import io.jtap.xen.XenStorePermission;
import io.jtap.xen.XenStorePermission.Access;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Supplier;

/**
 * An in-process Xen: a world of domains with grant tables, guest memory and event channels, for testing backends and
 * frontends without a hypervisor.
 *
 * <p>Faithful where a backend can tell the difference: a mapping truly aliases guest memory (guest pages live in a
 * memfd and are mapped {@code MAP_SHARED} into the backend's view); a grant is checked as Xen checks it (the ref
 * exists, is granted to the mapping domain, is not ended, is writable only if not read-only) with Xen's
 * {@code GNTST_*} codes; a grant that is mapped cannot be ended; event-channel ports are bound at most once, a closed
 * interdomain port leaves its peer unbound, and a port fires once and stays masked until unmasked, as with the Linux
 * device; every event-channel handle has an eventfd, so the same poll loop runs against the real and the simulated
 * device.
 *
 * <p>Domain 0 ({@link #dom0()}) exists from the start and is where a backend under test runs; guests are made with
 * {@link #createDomain(String)}. Each domain opens its own views: {@link SimulatedDomain#openGrantTable()},
 * {@link SimulatedDomain#openEventChannels()}.
 *
 * <p>Leak checks: {@link #leaks()} lists live grant mappings, open grant-table and event-channel handles with their
 * bound ports, and whatever other facilities registered with {@link #addLeakSource}. {@code SimulatedXenExtension}
 * (test-jar) gives each test a fresh world and asserts no leaks after it.
 *
 * <p>Thread-safe: one lock guards the simulated hypervisor state, as Xen's per-domain locks would.
 */
public final class SimulatedXen implements AutoCloseable {
    /** The backend's own domain. */
    public static final int DOM0 = 0;
    /** Guest memory reserved (address space only) per domain unless given: 256 MiB. */
    public static final int DEFAULT_MAX_PAGES = 65536;

    /** Guards every piece of simulated hypervisor state: domains, grant entries, ports, handles. */
    final Object lock = new Object();
    private final Map<Integer, SimulatedDomain> domains = new TreeMap<>();
    private final Set<SimulatedGrantTable> openGrantTables = new LinkedHashSet<>();
    private final Set<SimulatedGrantMapping> liveMappings = new LinkedHashSet<>();
    private final Set<SimulatedEventChannels> openEventChannels = new LinkedHashSet<>();
    private final Map<String, Supplier<? extends Collection<String>>> leakSources = new LinkedHashMap<>();
    private final SimulatedXenStore xenStore = new SimulatedXenStore();
    private int nextDomid = 1;
    private boolean closed;

    public SimulatedXen() {
        domains.put(DOM0, new SimulatedDomain(this, DOM0, "Domain-0", DEFAULT_MAX_PAGES));
        writeDomainHome(DOM0, "Domain-0");
        addLeakSource("xenstore", () -> {
            List<String> leaks = new ArrayList<>(xenStore.openConnections());
            xenStore.leaks().lines().forEach(leaks::add);
            return leaks;
        });
    }

    /** The world's xenstore; {@link SimulatedXenStore#connect(int)} opens a connection as a domain. */
    public SimulatedXenStore xenStore() {
        return xenStore;
    }

    /**
     * The facilities as seen from {@code domid}: what a backend running in that domain is handed. Every handle it
     * opens is owned by the caller and counted by {@link #leaks()} until closed.
     *
     * @throws NoSuchElementException when the domain does not exist
     */
    public XenPlatform platform(int domid) {
        SimulatedDomain domain = domain(domid);
        return new XenPlatform() {
            @Override
            public int domid() {
                return domid;
            }

            @Override
            public GrantTable openGrantTable() {
                return domain.openGrantTable();
            }

            @Override
            public EventChannels openEventChannels() throws IOException {
                return domain.openEventChannels();
            }

            @Override
            public XenStore openXenStore() {
                return xenStore.connect(domid);
            }

            @Override
            public String describe() {
                return "simulated Xen, domid=" + domid;
            }
        };
    }

    /** Domain 0, where the backend under test runs. */
    public SimulatedDomain dom0() {
        return domain(DOM0);
    }

    /** Creates a guest domain with the next free domid (1, 2, ...) and {@link #DEFAULT_MAX_PAGES} of memory. */
    public SimulatedDomain createDomain(String name) {
        return createDomain(name, DEFAULT_MAX_PAGES);
    }

    /** Creates a guest domain that may allocate up to {@code maxPages} pages of memory. */
    public SimulatedDomain createDomain(String name, int maxPages) {
        if (maxPages <= 0) {
            throw new IllegalArgumentException("domain needs memory: name=" + name + ", maxPages=" + maxPages);
        }
        SimulatedDomain domain;
        synchronized (lock) {
            ensureOpen();
            int domid = nextDomid++;
            domain = new SimulatedDomain(this, domid, name, maxPages);
            domains.put(domid, domain);
        }
        writeDomainHome(domain.domid(), name);
        xenStore.introduceDomain(domain.domid());
        return domain;
    }

    /**
     * Writes a domain's home as the toolstack does when it builds the domain: {@code /local/domain/<id>} owned by dom0
     * and readable by the domain, with {@code domid} and {@code name}, a {@code device} directory for frontends, and
     * {@code data} owned by the domain.
     */
    private void writeDomainHome(int domid, String name) {
        String home = "/local/domain/" + domid;
        List<XenStorePermission> readable = domid == DOM0 ? List.of(XenStorePermission.of(DOM0, Access.NONE))
                : List.of(XenStorePermission.of(DOM0, Access.NONE), XenStorePermission.of(domid, Access.READ));
        try (XenStore store = xenStore.connect(DOM0)) {
            store.transaction(tx -> {
                tx.mkdir(home);
                tx.setPermissions(home, readable);
                tx.write(home + "/domid", Integer.toString(domid));
                tx.write(home + "/name", name);
                tx.mkdir(home + "/device");
                tx.mkdir(home + "/data");
                tx.setPermissions(home + "/data", List.of(XenStorePermission.of(domid, Access.NONE)));
                return null;
            });
        } catch (IOException e) {
            throw new UncheckedIOException("simulated toolstack could not write the domain's home: domid=" + domid, e);
        }
    }

    /**
     * The domain {@code domid}.
     *
     * @throws NoSuchElementException when there is none (or it was destroyed)
     */
    public SimulatedDomain domain(int domid) {
        synchronized (lock) {
            SimulatedDomain d = domains.get(domid);
            if (d == null) {
                throw new NoSuchElementException("no such simulated domain: domid=" + domid);
            }
            return d;
        }
    }

    /** The live domains, by domid. */
    public List<SimulatedDomain> domains() {
        synchronized (lock) {
            return List.copyOf(domains.values());
        }
    }

    /** The live domain {@code domid}, or null; called with {@link #lock} held. */
    SimulatedDomain liveDomain(int domid) {
        return domains.get(domid);
    }

    /** Removes a destroyed domain; called with {@link #lock} held. */
    void forget(SimulatedDomain domain) {
        domains.remove(domain.domid());
    }

    /**
     * Registers another facility's leak report (for example the simulated xenstore's open watches and transactions).
     * {@code source} is called by {@link #leaks()} and returns one line per leaked resource; empty when none.
     */
    public void addLeakSource(String facility, Supplier<? extends Collection<String>> source) {
        synchronized (lock) {
            if (leakSources.putIfAbsent(facility, source) != null) {
                throw new IllegalStateException("leak source already registered: facility=" + facility);
            }
        }
    }

    /**
     * Everything still held: live grant mappings (also those whose table was closed), open grant-table handles, open
     * event-channel handles with their bound ports, then the registered facilities. Each line is
     * {@code "facility: what"}; empty when nothing leaked.
     */
    public List<String> leaks() {
        List<String> leaks = new ArrayList<>();
        Map<String, Supplier<? extends Collection<String>>> sources;
        synchronized (lock) {
            for (SimulatedGrantMapping m : liveMappings) {
                leaks.add("grant mapping: " + m);
            }
            for (SimulatedGrantTable t : openGrantTables) {
                leaks.add("grant table handle: " + t);
            }
            for (SimulatedEventChannels e : openEventChannels) {
                leaks.add("event channel handle: " + e);
            }
            sources = new LinkedHashMap<>(leakSources);
        }
        for (Map.Entry<String, Supplier<? extends Collection<String>>> source : sources.entrySet()) {
            for (String leak : source.getValue().get()) {
                leaks.add(source.getKey() + ": " + leak);
            }
        }
        return leaks;
    }

    /** @throws AssertionError listing every leak, when {@link #leaks()} is not empty */
    public void assertNoLeaks() {
        List<String> leaks = leaks();
        if (!leaks.isEmpty()) {
            throw new AssertionError("simulated Xen resources leaked: count=" + leaks.size() + "\n  "
                    + String.join("\n  ", leaks));
        }
    }

    void registered(SimulatedGrantTable table) {
        openGrantTables.add(table);
    }

    void unregistered(SimulatedGrantTable table) {
        openGrantTables.remove(table);
    }

    void registered(SimulatedGrantMapping mapping) {
        liveMappings.add(mapping);
    }

    void unregistered(SimulatedGrantMapping mapping) {
        liveMappings.remove(mapping);
    }

    void registered(SimulatedEventChannels channels) {
        openEventChannels.add(channels);
    }

    void unregistered(SimulatedEventChannels channels) {
        openEventChannels.remove(channels);
    }

    /** Called with {@link #lock} held. */
    void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("simulated Xen is closed");
        }
    }

    /**
     * Tears the world down: unmaps live mappings, closes open handles, releases every domain's memory. Leaks are not
     * reported here; call {@link #assertNoLeaks()} first. Idempotent.
     */
    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            List<IOException> failures = new ArrayList<>();
            for (SimulatedGrantMapping m : List.copyOf(liveMappings)) {
                try {
                    m.close();
                } catch (IOException e) {
                    failures.add(e);
                }
            }
            for (SimulatedEventChannels e : List.copyOf(openEventChannels)) {
                try {
                    e.close();
                } catch (IOException ex) {
                    failures.add(ex);
                }
            }
            for (SimulatedGrantTable t : List.copyOf(openGrantTables)) {
                t.close();
            }
            for (SimulatedDomain d : List.copyOf(domains.values())) {
                try {
                    d.releaseMemory();
                } catch (ErrnoException e) {
                    failures.add(e);
                }
            }
            domains.clear();
            xenStore.close();
            closed = true;
            if (!failures.isEmpty()) {
                UncheckedIOException error = new UncheckedIOException("closing simulated Xen failed: failures="
                        + failures.size(), failures.get(0));
                failures.stream().skip(1).forEach(error::addSuppressed);
                throw error;
            }
        }
    }
}
