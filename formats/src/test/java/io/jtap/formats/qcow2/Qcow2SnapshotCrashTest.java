package io.jtap.formats.qcow2;

import static io.jtap.formats.QemuTools.runAllowingFailure;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.jtap.formats.Checkable;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageCheck;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.QemuTools;
import io.jtap.formats.SelfDescribingData;
import io.jtap.formats.qcow2.Qcow2CrashTest.Disk;
import io.jtap.formats.qcow2.Qcow2CrashTest.Event;
import io.jtap.formats.qcow2.Qcow2CrashTest.Recorder;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Crash consistency of snapshot operations, proven by enumeration as in {@link Qcow2CrashTest}: a recorded workload
 * creates, deletes and applies snapshots, with copy-on-write writes into shared clusters between them; for every
 * prefix of the write stream, as issued and with the writes since the last sync reduced to a random subset of their
 * sectors in random order, the file as a crash would leave it must
 * <ul>
 *   <li>pass jtap's check with no corruption and {@code qemu-img check} with no error (inside a snapshot operation:
 *       not even a leak, since each one is a single header switch);</li>
 *   <li>inside a snapshot operation, be exactly the state before it or the state after it: the same snapshot list,
 *       every snapshot's contents and the active contents of one of the two;</li>
 *   <li>inside a run of writes, keep every snapshot as it was and every active byte the writes did not touch.</li>
 * </ul>
 */
class Qcow2SnapshotCrashTest {
    private static final long SEED = Long.getLong("jtap.seed", System.nanoTime());
    private static final int SIZE = 1 << 20;

    @TempDir
    Path dir;

    /** What the image holds between operations: the active disk and each snapshot's, by name, in table order. */
    private record State(byte[] active, Map<String, byte[]> snapshots) {
        State with(byte[] newActive, Map<String, byte[]> newSnapshots) {
            return new State(newActive.clone(), new LinkedHashMap<>(newSnapshots));
        }
    }

    /** One recorded step: a snapshot operation (atomic) or a run of writes, from state {@code before}. */
    private record Phase(String what, boolean atomic, int before, List<long[]> touched) {
    }

    @Test
    void everyCutPointOfSnapshotOperationsIsOneStateOrTheOther() throws Exception {
        String context = "seed=" + SEED + " (rerun with -Djtap.seed=" + SEED + ")";
        System.out.println("Qcow2SnapshotCrashTest " + context);
        Random rnd = new Random(SEED);
        ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");
        Path img = dir.resolve("snap.qcow2");
        // 512-byte clusters: an L2 table per 32 KiB of disk, a refcount block per 128 KiB of file, so that an
        // operation copies many tables and changes several blocks
        qcow2.create(img, CreateOptions.ofSize(SIZE).with("cluster_size", "512"));
        byte[] active = new byte[SIZE];
        Map<String, byte[]> snaps = new LinkedHashMap<>();
        List<State> states = new ArrayList<>();
        List<Phase> phases = new ArrayList<>();
        Recorder rec = new Recorder();
        byte[] initial;
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults().withCacheBytes(4096))) {
            writeSome(image, active, rnd, 12, 2, null);
            image.createSnapshot("s0");
            snaps.put("s0", active.clone());
            writeSome(image, active, rnd, 6, 20, null);
            image.flush();
            initial = java.nio.file.Files.readAllBytes(img);
            states.add(new State(active.clone(), new LinkedHashMap<>(snaps)));
            image.hostFile().observe(rec);

            phase(rec, phases, states, "create s1", true, null);
            image.createSnapshot("s1");
            snaps.put("s1", active.clone());
            states.add(states.get(states.size() - 1).with(active, snaps));

            List<long[]> touched = new ArrayList<>();
            phase(rec, phases, states, "writes after s1", false, touched);
            writeSome(image, active, rnd, 8, 40, touched);
            image.flush();
            states.add(states.get(states.size() - 1).with(active, snaps));

            phase(rec, phases, states, "delete s0", true, null);
            image.deleteSnapshot(image.findSnapshot("s0").orElseThrow().id());
            snaps.remove("s0");
            states.add(states.get(states.size() - 1).with(active, snaps));

            phase(rec, phases, states, "apply s1", true, null);
            image.applySnapshot(image.findSnapshot("s1").orElseThrow().id());
            active = snaps.get("s1").clone();
            states.add(states.get(states.size() - 1).with(active, snaps));

            touched = new ArrayList<>();
            phase(rec, phases, states, "writes after apply", false, touched);
            writeSome(image, active, rnd, 8, 60, touched);
            image.flush();
            states.add(states.get(states.size() - 1).with(active, snaps));

            phase(rec, phases, states, "create s2", true, null);
            image.createSnapshot("s2");
            snaps.put("s2", active.clone());
            states.add(states.get(states.size() - 1).with(active, snaps));

            phase(rec, phases, states, "delete s1", true, null);
            image.deleteSnapshot(image.findSnapshot("s1").orElseThrow().id());
            snaps.remove("s1");
            states.add(states.get(states.size() - 1).with(active, snaps));
            image.hostFile().observe(null);
        }
        System.out.println("Qcow2SnapshotCrashTest: " + rec.events.size() + " events");

        long started = System.nanoTime();
        Disk issued = new Disk(initial);
        Disk lastSynced = new Disk(initial);
        int lastSyncIndex = -1;
        int cuts = 0;
        int qemuChecked = 0;
        Path cut = dir.resolve("cut.qcow2");
        for (int k = 0; k < rec.events.size(); k++) {
            Event e = rec.events.get(k);
            issued.apply(e);
            if (e.kind() == Event.Kind.SYNC) {
                lastSynced = new Disk(issued);
                lastSyncIndex = k;
            }
            if (e.kind() != Event.Kind.WRITE && e.kind() != Event.Kind.ZERO && e.kind() != Event.Kind.SYNC) {
                continue;
            }
            Phase phase = currentPhase(rec, k, phases);
            String where = context + ", cut after event " + k + " of " + rec.events.size() + " (" + phase.what()
                    + ")";
            issued.writeTo(cut);
            verify(cut, phase, states, where + " (as issued)");
            if (phase.atomic() || k % 4 == 0) {
                assertQemuFindsNothing(cut, phase.atomic(), where + " (as issued)");
                qemuChecked++;
            }
            Disk reordered = new Disk(lastSynced);
            int landed = reordered.applySomeOf(rec.events, lastSyncIndex + 1, k, true, rnd);
            reordered.writeTo(cut);
            verify(cut, phase, states, where + " (unsynced tail reduced to " + landed + " writes, shuffled)");
            cuts += 2;
        }
        // the end: the last state, exactly
        issued.writeTo(cut);
        assertMatches(cut, states.get(states.size() - 1), context + ", after the last event");
        System.out.printf("Qcow2SnapshotCrashTest: %d cut points checked by jtap, %d by qemu-img, %.1f s%n", cuts,
                qemuChecked, (System.nanoTime() - started) / 1e9);
    }

    private static void writeSome(Image image, byte[] model, Random rnd, int count, int tag, List<long[]> touched)
            throws Exception {
        for (int i = 0; i < count; i++) {
            long off = rnd.nextInt(SIZE);
            int len = (int) Math.min(SIZE - off, 1 + rnd.nextInt(rnd.nextInt(3) == 0 ? 200_000 : 5000));
            image.write(off, SelfDescribingData.buffer(off, len, tag + i));
            SelfDescribingData.fill(model, (int) off, len, off, tag + i);
            if (touched != null) {
                touched.add(new long[] {off, off + len});
            }
        }
    }

    private static void phase(Recorder rec, List<Phase> phases, List<State> states, String what, boolean atomic,
                              List<long[]> touched) {
        rec.events.add(new Event(Event.Kind.OP_BEGIN, 0, 0, null, false, phases.size()));
        phases.add(new Phase(what, atomic, states.size() - 1, touched));
    }

    private static Phase currentPhase(Recorder rec, int k, List<Phase> phases) {
        for (int i = k; i >= 0; i--) {
            if (rec.events.get(i).kind() == Event.Kind.OP_BEGIN) {
                return phases.get(rec.events.get(i).marker());
            }
        }
        throw new IllegalStateException("event before the first phase: " + k);
    }

    /**
     * jtap's check finds no corruption (and no leak inside a snapshot operation); the image is the state before or
     * after an atomic operation, or, during writes, has every snapshot and every untouched active byte as before.
     */
    private static void verify(Path cut, Phase phase, List<State> states, String where) throws Exception {
        ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");
        try (Image image = qcow2.open(cut, OpenOptions.defaults().withReadOnly(true).withCheck(true))) {
            ImageCheck c = ((Checkable) image).check(false, false);
            if (c.corruptions() != 0 || c.checkErrors() != 0 || phase.atomic() && c.leaks() != 0) {
                fail(where + ": jtap check: " + c);
            }
        }
        State before = states.get(phase.before());
        if (phase.atomic()) {
            String asBefore = differs(cut, before);
            if (asBefore == null) {
                return;
            }
            String asAfter = differs(cut, states.get(phase.before() + 1));
            if (asAfter != null) {
                fail(where + ": neither the state before (" + asBefore + ") nor after (" + asAfter + ")");
            }
            return;
        }
        byte[] expected = before.active().clone();
        byte[] actual = read(cut, null);
        for (long[] r : phase.touched()) {
            System.arraycopy(actual, (int) r[0], expected, (int) r[0], (int) (r[1] - r[0]));
        }
        String diff = SelfDescribingData.firstDifference(expected, actual, 0);
        if (diff != null) {
            fail(where + ": untouched active data changed: " + diff);
        }
        String snapshots = differsInSnapshots(cut, before);
        if (snapshots != null) {
            fail(where + ": a write changed a snapshot: " + snapshots);
        }
    }

    private static void assertMatches(Path cut, State state, String where) throws Exception {
        String diff = differs(cut, state);
        if (diff != null) {
            fail(where + ": " + diff);
        }
    }

    /** Null when the image holds exactly {@code state}, else what differs first. */
    private static String differs(Path img, State state) throws Exception {
        String snapshots = differsInSnapshots(img, state);
        if (snapshots != null) {
            return snapshots;
        }
        String active = SelfDescribingData.firstDifference(state.active(), read(img, null), 0);
        return active == null ? null : "active: " + active;
    }

    private static String differsInSnapshots(Path img, State state) throws Exception {
        List<String> names;
        try (Qcow2Image image = (Qcow2Image) ImageFormats.defaults().get("qcow2").open(img,
                OpenOptions.defaults().withReadOnly(true))) {
            names = image.snapshots().stream().map(Qcow2Snapshot::name).toList();
        }
        if (!names.equals(new ArrayList<>(state.snapshots().keySet()))) {
            return "snapshots " + names + ", expected " + state.snapshots().keySet();
        }
        for (Map.Entry<String, byte[]> s : state.snapshots().entrySet()) {
            String diff = SelfDescribingData.firstDifference(s.getValue(), read(img, s.getKey()), 0);
            if (diff != null) {
                return "snapshot " + s.getKey() + ": " + diff;
            }
        }
        return null;
    }

    private static byte[] read(Path img, String snapshot) throws Exception {
        OpenOptions options = OpenOptions.defaults().withReadOnly(true);
        if (snapshot != null) {
            options = options.withSnapshot(snapshot);
        }
        try (Image image = ImageFormats.defaults().get("qcow2").open(img, options)) {
            byte[] b = new byte[(int) image.size()];
            image.read(0, ByteBuffer.wrap(b));
            return b;
        }
    }

    private static void assertQemuFindsNothing(Path cut, boolean noLeaks, String where) throws Exception {
        if (QemuTools.require("qemu-img") == null) {
            return;
        }
        QemuTools.Result r = runAllowingFailure("qemu-img", "check", "-f", "qcow2", cut.toString());
        // 0 = clean, 3 = leaks only
        if (r.exit() != 0 && (r.exit() != 3 || noLeaks) || r.output().contains("ERROR")) {
            fail(where + ": qemu-img check exit=" + r.exit() + ": " + r.output());
        }
        assertTrue(r.exit() == 0 || !noLeaks, where);
    }
}
