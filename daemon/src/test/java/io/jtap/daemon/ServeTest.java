package io.jtap.daemon;

import io.jtap.blkback.GrantMode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code jtap serve}: options, clear errors, and a serve run on the simulated Xen that stops when told. */
class ServeTest {

    @Test
    void optionsParse() throws Exception {
        ServeOptions o = ServeOptions.parse(List.of("--xen=simulated", "--backend-kind=vbd3", "--grant-mode=copy",
                "--max-queues=2", "--max-ring-page-order=3", "--max-indirect-segments=512",
                "--max-persistent-grants=100", "--workers=3", "--domid=7", "--io-engine=pool",
                "--offload-reads-from=65536"));
        assertEquals("simulated", o.xen());
        assertEquals("vbd3", o.kind());
        assertEquals(GrantMode.COPY, o.config().grantMode());
        assertEquals(2, o.config().maxQueues());
        assertEquals(3, o.config().maxRingPageOrder());
        assertEquals(512, o.config().maxIndirectSegments());
        assertEquals(100, o.config().maxPersistentGrants());
        assertEquals(3, o.workers());
        assertEquals(7, o.domid().getAsInt());
        assertEquals("pool", o.config().ioEngine());
        assertEquals(65536, o.config().offloadReadBytes());
        assertTrue(o.blk());
        assertEquals("tap", o.net());
        ServeOptions netOnly = ServeOptions.parse(List.of("--blk=off", "--net=switch"));
        assertEquals(false, netOnly.blk());
        assertEquals("switch", netOnly.net());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "--xen=kvm | bad --xen: value=kvm",
        "--max-ring-page-order=5 | bad --max-ring-page-order: value=5, expected 0..4",
        "--max-queues=x | bad --max-queues: value=x",
        "--grant-mode=magic | bad --grant-mode: value=magic",
        "--backend-kind=../x | bad --backend-kind: value=../x",
        "--frobnicate=1 | unknown option: --frobnicate",
        "--io-engine=aio | bad --io-engine: value=aio",
        "--offload-reads-from=-1 | bad --offload-reads-from: value=-1, expected 0..1073741824",
        "serve | expected --name=value: argument=serve",
        "--net=bridge | bad --net: value=bridge, expected tap, switch or off",
        "--blk=maybe | bad --blk: value=maybe, expected on or off",
    })
    void badOptionsSayWhatIsWrong(String arg, String message) {
        UsageException e = assertThrows(UsageException.class, () -> ServeOptions.parse(List.of(arg)));
        assertTrue(e.getMessage().contains(message), e.getMessage());
    }

    @Test
    void servingNothingIsRefused() {
        UsageException e = assertThrows(UsageException.class,
                () -> ServeOptions.parse(List.of("--blk=off", "--net=off")));
        assertTrue(e.getMessage().contains("nothing to serve"), e.getMessage());
    }

    @Test
    void serveRunsUntilStopped() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        CountDownLatch stop = new CountDownLatch(1);
        ExecutorService ex = Executors.newSingleThreadExecutor();
        try {
            Future<Integer> status = ex.submit(() -> Main.run(new String[] {"serve", "--xen=simulated"},
                    new PrintStream(out, true, StandardCharsets.UTF_8),
                    new PrintStream(err, true, StandardCharsets.UTF_8), stop));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!out.toString(StandardCharsets.UTF_8).contains("jtap serve:") && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            stop.countDown();
            assertEquals(0, status.get(10, TimeUnit.SECONDS), err::toString);
            String text = out.toString(StandardCharsets.UTF_8);
            assertTrue(text.contains("/local/domain/0/backend/vbd on simulated Xen"), text);
            assertTrue(text.contains("/local/domain/0/backend/vif on simulated Xen, domid=0, net=tap"), text);
            assertTrue(text.contains("stopping, devices=0, vifs=0"), text);
        } finally {
            ex.shutdownNow();
        }
    }
}
