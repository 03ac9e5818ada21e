package io.jtap.tap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** The kernel's {@code dev_valid_name()} rules, as a table. */
class IfReqDescriptorTest {
    @ParameterizedTest
    @ValueSource(strings = {"vif3.0", "tap%d", "a", "fifteen-chars-x", "jtap_0-1"})
    void validNames(String name) {
        assertArrayEquals(name.getBytes(StandardCharsets.UTF_8), IfReqDescriptor.validateName(name));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "''                  | empty",
        "sixteen-chars-xx    | longer than 15 bytes",
        "ééééééééé           | longer than 15 bytes",
        ".                   | '.' and '..'",
        "..                  | '.' and '..'",
        "a/b                 | contains",
        "a:b                 | contains",
        "'a b'               | contains",
        "'a\tb'              | contains"})
    void invalidNames(String name, String reason) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> IfReqDescriptor.validateName(name));
        assertTrue(e.getMessage().startsWith("invalid interface name: " + reason), e.getMessage());
    }
}
