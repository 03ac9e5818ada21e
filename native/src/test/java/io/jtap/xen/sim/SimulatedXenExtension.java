package io.jtap.xen.sim;

import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * Gives each test a fresh {@link SimulatedXen} (inject it as a parameter of the test or of a {@code @BeforeEach}
 * method) and, after the test and its {@code @AfterEach} methods, asserts that nothing leaked: no live grant mapping,
 * no open handle, nothing a registered facility reports. A test that already failed is not masked by a leak report.
 * The world is closed either way.
 */
public final class SimulatedXenExtension implements BeforeEachCallback, AfterEachCallback, ParameterResolver {
    private static final ExtensionContext.Namespace NAMESPACE =
            ExtensionContext.Namespace.create(SimulatedXenExtension.class);

    @Override
    public void beforeEach(ExtensionContext context) {
        context.getStore(NAMESPACE).put(SimulatedXen.class, new SimulatedXen());
    }

    @Override
    public void afterEach(ExtensionContext context) {
        SimulatedXen xen = context.getStore(NAMESPACE).remove(SimulatedXen.class, SimulatedXen.class);
        if (xen == null) {
            return;
        }
        try {
            if (context.getExecutionException().isEmpty()) {
                xen.assertNoLeaks();
            }
        } finally {
            xen.close();
        }
    }

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        return parameter.getParameter().getType() == SimulatedXen.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
        SimulatedXen xen = context.getStore(NAMESPACE).get(SimulatedXen.class, SimulatedXen.class);
        if (xen == null) {
            throw new IllegalStateException(
                    "SimulatedXen is only available to tests and @BeforeEach/@AfterEach methods");
        }
        return xen;
    }
}
