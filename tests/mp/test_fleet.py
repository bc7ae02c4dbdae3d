# lib/rbamp/fleet.py against the simulator: General Call with witness, fallbacks.
# sim: tools/host/sim/scenarios/fleet.json
# timeout: 120
import time

import _sim
import machine
from mptest import eq, near, run

from rbamp import Fleet, RbAmp, broadcast_latch

i2c = machine.I2C(0, freq=50000)
LOADS = {0x50: [1000.0], 0x51: [500.0, 250.0], 0x52: [2000.0]}


def check_energy(fleet, rounds):
    """Energy per module and channel vs the simulator truth over the same rounds."""
    t0 = _sim.ctl("truth")["truth"]
    e0 = {m.addr: [m.energy.uwh(c) for c in range(m.channels)] for m in fleet.modules}
    for _ in range(rounds):
        time.sleep_ms(600)
        for m, snap in fleet.read_all():
            if not hasattr(snap, "avg_power"):
                raise AssertionError("0x%02x: %r" % (m.addr, snap))
            for c in range(m.channels):
                near(snap.avg_power[c], LOADS[m.addr][c], 0.01)
    t1 = _sim.ctl("truth")["truth"]
    names = {0x50: "a", 0x51: "b", 0x52: "c"}
    for m in fleet.modules:
        for c in range(m.channels):
            got = (m.energy.uwh(c) - e0[m.addr][c]) / 1e6
            want = t1[names[m.addr]][c][0] - t0[names[m.addr]][c][0]
            near(got, want, LOADS[m.addr][c] * 0.15 / 3600, "0x%02x ch%d" % (m.addr, c))


def test_broadcast_is_nacked_when_nobody_listens():
    # modules a and b enabled GC in flash but only at boot: they did boot with it
    eq(broadcast_latch(i2c, 0, 5), True)
    c = RbAmp(i2c, 0x52).begin(prime=False)
    eq(c.gc_enabled(), False)


def test_mixed_fleet_latches_sequentially():
    f = Fleet(i2c, group=7).begin()
    eq([m.addr for m in f.modules], [0x50, 0x51, 0x52])
    eq(f.gc, False)                         # one module has General Call off
    check_energy(f, 3)


def test_enable_gc_then_broadcast_with_witness():
    c = RbAmp(i2c, 0x52).begin(prime=False)
    flash0 = [m for m in _sim.ctl("modules")["modules"] if m["name"] == "c"][0]["flash_writes"]
    eq(c.enable_gc(True, group=7), True)   # group + GC_ENABLE, one save, reset
    eq(c.gc_enabled(), True)
    flash1 = [m for m in _sim.ctl("modules")["modules"] if m["name"] == "c"][0]["flash_writes"]
    eq(flash1 - flash0, 1)
    eq(c.enable_gc(True, group=7), False)  # already so: no flash write
    f = Fleet(i2c, group=7).begin()
    eq(f.gc, True)
    check_energy(f, 3)
    eq((f.gc_misses, f.gc_nacks), (0, 0))
    ticks = [m.read_gc_tick() for m in f.modules]
    eq(ticks, [f.tick] * 3)


def test_a_module_that_misses_the_broadcast_is_latched_alone():
    f = Fleet(i2c, group=7).begin()
    b = f.modules[1]
    b.set_group_id(3, save=False)          # RAM only: it now ignores group 7 frames
    try:
        check_energy(f, 3)
        eq(f.gc_misses, 3)                 # once per round, and never double counted
    finally:
        b.set_group_id(7, save=False)


def test_node_metering_latches_one_by_one_while_a_module_is_missing():
    # a General-Call frame latches every module with it enabled, also one the node cannot
    # read now (missing after a bus error): its period would close unread, its energy lost
    import asyncio

    from rbnode import config
    from rbnode.ledger import Ledger
    from rbnode.measure.meter import Meter
    from rbnode.measure.metering import Metering
    cfg = config.check({"modules": [{"address": 0x50, "name": "a"},
                                    {"address": 0x51, "name": "b"}]})[0]
    ledger = Ledger("/tmp/rbnode-fleet-test-energy")
    meters = []
    for spec in cfg["modules"]:
        m = Meter(spec, i2c, 3, cfg["events"])
        eq(m.detect(), True)
        ledger.meter(m.key, m.id, m.addr, m.channels)
        meters.append(m)
    met = Metering(i2c, meters, ledger, lambda: 0)

    def cycle():
        time.sleep_ms(600)
        asyncio.run(met.cycle())
        return _sim.ctl("truth")["at_latch"]
    cycle()                                  # the primer
    eq(met.fleet.gc, True)
    before = cycle()
    meters[1].state = "missing"              # as after a detection that failed
    after = cycle()
    eq(met.fleet.gc, False)
    eq(after["b"], before["b"])              # b's period goes on, for when it is back
    if after["a"] == before["a"]:
        raise AssertionError("a was not latched")
    meters[1].state = "ok"
    back = cycle()
    eq(met.fleet.gc, True)
    if back["b"] == before["b"]:
        raise AssertionError("b is latched again once it is back")


run(globals())
