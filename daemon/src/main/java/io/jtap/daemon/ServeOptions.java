package io.jtap.daemon;

import io.jtap.blkback.BlkbackConfig;
import io.jtap.blkback.GrantMode;

import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;

/**
 * Options of {@code jtap serve}, parsed from {@code --name=value} arguments.
 *
 * @param xen      "linux" (/dev/xen) or "simulated" (an in-process world, for tests)
 * @param kind     the backend kind whose directory is served, e.g. "vbd"
 * @param domid    the domain jtap runs in; empty = ask xenstore
 * @param workers  image IO worker threads
 * @param config   the block backend's tunables
 * @param blk      whether to serve block devices ({@code backend/<kind>})
 * @param net      how to serve network devices ({@code backend/vif}): "tap" (a TAP per vif, for the host's bridge or
 *                 routing scripts), "switch" (an in-process switch between this daemon's vifs) or "off"
 */
record ServeOptions(String xen, String kind, OptionalInt domid, int workers, BlkbackConfig config, boolean blk,
                    String net) {
    static final String USAGE = String.join("\n",
            "usage: jtap serve [--xen=linux|simulated] [--backend-kind=vbd] [--domid=N] [--workers=N]",
            "                  [--blk=on|off] [--net=tap|switch|off]",
            "                  [--grant-mode=persistent|map|copy] [--max-queues=N] [--max-ring-page-order=0..4]",
            "                  [--max-indirect-segments=N] [--max-persistent-grants=N] [--io-engine=io_uring|pool]",
            "                  [--offload-reads-from=BYTES]");

    static ServeOptions parse(List<String> args) throws UsageException {
        String xen = "linux";
        String kind = "vbd";
        OptionalInt domid = OptionalInt.empty();
        int workers = Math.max(2, Runtime.getRuntime().availableProcessors());
        BlkbackConfig config = BlkbackConfig.defaults();
        boolean blk = true;
        String net = "tap";
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (!arg.startsWith("--") || eq < 0) {
                throw new UsageException("expected --name=value: argument=" + arg);
            }
            String name = arg.substring(2, eq);
            String value = arg.substring(eq + 1);
            switch (name) {
                case "xen" -> {
                    if (!value.equals("linux") && !value.equals("simulated")) {
                        throw new UsageException("bad --xen: value=" + value + ", expected linux or simulated");
                    }
                    xen = value;
                }
                case "backend-kind" -> {
                    if (!value.matches("[A-Za-z0-9_-]+")) {
                        throw new UsageException("bad --backend-kind: value=" + value + ", expected [A-Za-z0-9_-]+");
                    }
                    kind = value;
                }
                case "blk" -> {
                    if (!value.equals("on") && !value.equals("off")) {
                        throw new UsageException("bad --blk: value=" + value + ", expected on or off");
                    }
                    blk = value.equals("on");
                }
                case "net" -> {
                    if (!value.equals("tap") && !value.equals("switch") && !value.equals("off")) {
                        throw new UsageException("bad --net: value=" + value + ", expected tap, switch or off");
                    }
                    net = value;
                }
                case "domid" -> domid = OptionalInt.of(number(name, value, 0, 0x7fef));
                case "workers" -> workers = number(name, value, 1, 256);
                case "grant-mode" -> {
                    try {
                        config = config.withGrantMode(GrantMode.valueOf(value.toUpperCase(Locale.ROOT)));
                    } catch (IllegalArgumentException e) {
                        throw new UsageException("bad --grant-mode: value=" + value + ", expected persistent, map "
                                + "or copy");
                    }
                }
                case "max-queues" -> config = config.withMaxQueues(number(name, value, 1, 64));
                case "max-ring-page-order" -> config = config.withMaxRingPageOrder(number(name, value, 0, 4));
                case "max-indirect-segments" -> config = config.withMaxIndirectSegments(number(name, value, 0, 4096));
                case "max-persistent-grants" -> config = config.withMaxPersistentGrants(
                        number(name, value, 0, 1 << 20));
                case "offload-reads-from" -> config = config.withOffloadReadBytes(number(name, value, 0, 1 << 30));
                case "io-engine" -> {
                    if (!value.equals(BlkbackConfig.IO_ENGINE_IO_URING)
                            && !value.equals(BlkbackConfig.IO_ENGINE_POOL)) {
                        throw new UsageException("bad --io-engine: value=" + value + ", expected io_uring or pool");
                    }
                    config = config.withIoEngine(value);
                }
                default -> throw new UsageException("unknown option: --" + name);
            }
        }
        if (!blk && net.equals("off")) {
            throw new UsageException("nothing to serve: --blk=off and --net=off");
        }
        return new ServeOptions(xen, kind, domid, workers, config, blk, net);
    }

    private static int number(String name, String value, int min, int max) throws UsageException {
        try {
            int v = Integer.parseInt(value);
            if (v >= min && v <= max) {
                return v;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new UsageException("bad --" + name + ": value=" + value + ", expected " + min + ".." + max);
    }
}
