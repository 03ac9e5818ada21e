package io.jtap.formats.tool;

/** qemu-img's {@code --output} values. */
enum OutputFormat { human, json }
