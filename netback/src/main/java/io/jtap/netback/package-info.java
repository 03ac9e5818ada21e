/**
 * jtap's Xen network backend: Linux xen-netback's behaviour from userspace, with a TAP device as the host side.
 *
 * <p>Split as xen-netback is: the control path ({@link io.jtap.netback.NetbackService} watching {@code backend/vif},
 * {@link io.jtap.netback.VifXenbus} per device — xenbus states, features, hotplug, reconnect) and the data path
 * ({@code VifQueue} per queue with its thread, {@code TxPath} guest to host, {@code RxPath} host to guest,
 * {@code CreditLimiter} for the {@code rate} node), sharing {@code VifDevice}. Data moves by batched grant copy only;
 * the only grants netback maps are the rings. The daemon wires it with
 * {@code NetbackService.start(platform, LinuxTap::open)}; {@link io.jtap.netback.VifSwitch} as the TAP factory instead
 * connects the daemon's guests to each other without a host bridge.
 */
package io.jtap.netback;
