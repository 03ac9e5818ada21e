package io.jtap.blkback;

import io.jtap.formats.BackingReference;
import io.jtap.formats.BlockStatus;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Extent;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.WriteMapping;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A test format "recording" that opens raw images and logs when writes start and complete and when flushes start
 * and finish, with a random delay in each write so that a wrong ordering shows.
 */
final class RecordingFormat implements ImageFormat {
    final List<String> events = Collections.synchronizedList(new ArrayList<>());
    private final ImageFormat raw;

    RecordingFormat() throws IOException {
        raw = ImageFormats.defaults().get("raw");
    }

    ImageFormats registry() throws IOException {
        return ImageFormats.of(List.of(this, raw));
    }

    @Override
    public String name() {
        return "recording";
    }

    @Override
    public int probe(ByteBuffer header) {
        return 0;
    }

    @Override
    public void create(Path path, CreateOptions options) throws IOException {
        raw.create(path, options);
    }

    @Override
    public Image open(Path path, OpenOptions options) throws IOException {
        return new RecordingImage(raw.open(path, options));
    }

    private static void delay() {
        try {
            Thread.sleep(ThreadLocalRandom.current().nextInt(3));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private final class RecordingImage implements Image {
        private final Image inner;

        RecordingImage(Image inner) {
            this.inner = inner;
        }

        @Override
        public String formatName() {
            return "recording";
        }

        @Override
        public long size() {
            return inner.size();
        }

        @Override
        public int alignment() {
            return inner.alignment();
        }

        @Override
        public boolean isReadOnly() {
            return inner.isReadOnly();
        }

        @Override
        public void read(long offset, ByteBuffer dst) throws IOException {
            inner.read(offset, dst);
        }

        @Override
        public void write(long offset, ByteBuffer src) throws IOException {
            events.add("write-start " + offset);
            delay();
            inner.write(offset, src);
            events.add("write-done " + offset);
        }

        @Override
        public void flush() throws IOException {
            events.add("flush-start");
            delay();
            inner.flush();
            events.add("flush-done");
        }

        @Override
        public void discard(long offset, long length) throws IOException {
            inner.discard(offset, length);
        }

        @Override
        public void writeZeroes(long offset, long length) throws IOException {
            inner.writeZeroes(offset, length);
        }

        @Override
        public BlockStatus blockStatus(long offset, long length) throws IOException {
            return inner.blockStatus(offset, length);
        }

        @Override
        public void resize(long newSize) throws IOException {
            inner.resize(newSize);
        }

        @Override
        public Optional<BackingReference> backing() {
            return inner.backing();
        }

        @Override
        public Optional<Image> backingImage() {
            return inner.backingImage();
        }

        @Override
        public List<Extent> mapForRead(long offset, long length) throws IOException {
            return inner.mapForRead(offset, length);
        }

        @Override
        public WriteMapping mapForWrite(long offset, long length) throws IOException {
            events.add("write-start " + offset);
            WriteMapping m = inner.mapForWrite(offset, length);
            return new WriteMapping() {
                @Override
                public List<Extent> extents() {
                    return m.extents();
                }

                @Override
                public void complete() throws IOException {
                    delay();
                    m.complete();
                    events.add("write-done " + offset);
                }

                @Override
                public void abort() throws IOException {
                    m.abort();
                }

                @Override
                public void close() throws IOException {
                    m.close();
                }
            };
        }

        @Override
        public void close() throws IOException {
            inner.close();
        }
    }
}
