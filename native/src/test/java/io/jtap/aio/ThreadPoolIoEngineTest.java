package io.jtap.aio;

import java.io.IOException;

/** The block IO contract against the thread-pool engine (two workers, so completions interleave). */
class ThreadPoolIoEngineTest extends BlockIoEngineContract {
    @Override
    BlockIoEngine open(int queueDepth, int maxSegments) throws IOException {
        return ThreadPoolIoEngine.open(queueDepth, maxSegments, 2);
    }
}
