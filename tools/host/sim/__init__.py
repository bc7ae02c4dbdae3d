"""rbAmp simulator: a register-level model of rbAmp modules on an I²C bus.

- module.py / commands.py / measure.py: one module (rbamp-protocol.md §17)
- bus.py: several modules on one bus, General Call, faults, counters, DRDY lines
- loads.py: load profiles and the mains; clock.py: world clocks
- server.py: the simulator process a node on the unix port talks to (CPython only)

`build(scenario, clock)` turns a scenario dict (see scenarios/default.json) into a bus.
"""
from .bus import Faults, VirtualBus
from .loads import Mains, channel_from_spec
from .module import RbAmpModule

_MODULE_KEYS = ("variant", "address", "tier", "bidirectional", "version", "uid", "sensor_class",
                "ct", "fitted", "label", "gc_enable", "group", "mode", "virgin", "boot_error",
                "drift_ppm", "ct_codes", "first_commit_us", "legacy_burst", "pf_at_zero",
                "reset_acks", "keep_condition_codes", "reject_reserved_writes",
                "chip_timer_scale", "latch_race_us", "reset_busy_us", "name")


def make_module(spec, mains=None):
    """One module from a scenario entry; unknown keys are an error naming the key."""
    kw = {}
    for k, v in spec.items():
        if k in ("channels", "drdy_pin"):
            continue
        if k not in _MODULE_KEYS:
            raise ValueError("bench module: unknown key %r (allowed: %s)" % (k, ", ".join(_MODULE_KEYS)))
        if k in ("uid", "label") and isinstance(v, str):
            v = bytes.fromhex(v) if k == "uid" else v.encode()
        kw[k] = v
    chans = [channel_from_spec(c) for c in spec.get("channels", [])]
    return RbAmpModule(channels=chans, mains=mains, **kw)


def build(scenario, clock):
    """Scenario dict -> VirtualBus with its modules powered on at the clock's now."""
    m = scenario.get("mains", {})
    mains = Mains(m.get("volts", 230.0), m.get("hz", 50.0))
    f = scenario.get("faults", {})
    bus = VirtualBus(clock, scenario.get("freq", 50000), Faults(**f))
    for spec in scenario.get("modules", []):
        bus.add(make_module(spec, mains), spec.get("drdy_pin"))
    bus.mains = mains
    return bus
