# lib/rbamp against the simulator: detection, RT reads, faults, period energy.
# sim: tools/host/sim/scenarios/driver.json
# timeout: 150
import time

import _sim
import machine
import micropython
from mptest import eq, near, raises, run

from rbamp import (RbAmp, RbAmpIOError, RbAmpParamError, RbAmpStaleError, RbAmpVersionError)

i2c = machine.I2C(0, freq=50000)


def counters(addr):
    return _sim.ctl("counters")["counters"].get(str(addr), {"transactions": 0})


def test_begin_detects_identity():
    d = RbAmp(i2c, 0x50).begin()
    eq((d.variant_name(), d.channels, d.firmware_version), ("UI3", 3, 4))
    eq(d.has_voltage(), True)
    eq(d.read_uid(), bytes(range(1, 13)))
    i = RbAmp(i2c, 0x51).begin()
    eq((i.variant_name(), i.channels, i.has_voltage()), ("I3", 3, False))


def test_legacy_firmware_needs_variant_and_reads_bytewise():
    raises(RbAmpVersionError, RbAmp(i2c, 0x52).begin)
    d = RbAmp(i2c, 0x52, variant="UI1").begin()
    eq(d.io.burst, False)
    near(d.read_power(0), 690.0, 1e-3)
    snap = d.read_rt()
    near(snap.voltage, 230.0, 1e-3)
    near(snap.current[0], 3.0, 1e-3)


def test_legacy_byte_reads_never_splice_two_windows():
    # P alternates 1000 / 3000 W by window (partial windows give anything in between).
    # A float read byte by byte across a commit can take its exponent from one window and
    # its mantissa from the other: 750 or 4000 W, finite and wrong (§2.6).
    d = RbAmp(i2c, 0x56, variant="UI1").begin(prime=False)
    lo = hi = 0
    for _ in range(1500):
        p = d.read_power(0)
        if not 999.9 <= p <= 3000.1:
            raise AssertionError("spliced value %r" % p)
        lo += p < 1500
        hi += p > 2500
    if lo < 100 or hi < 100:
        raise AssertionError("load did not alternate: %d low, %d high" % (lo, hi))


def test_rt_snapshot_is_one_transaction_and_exact():
    d = RbAmp(i2c, 0x50).begin(prime=False)
    before = counters(0x50)["transactions"]
    s = d.read_rt()
    eq(counters(0x50)["transactions"] - before, 1)
    near(s.voltage, 230.0, 1e-4)
    near(s.current[0], 10.0, 1e-3)          # 1150 W at PF 0.5 -> 2300 VA
    near(s.power[1], -460.0, 1e-3)
    near(s.power_factor[0], 0.5, 1e-3)
    near(s.power_factor[1], -1.0, 1e-4)
    near(s.apparent_power(0), 2300.0, 0.5)
    eq(len(s.current), 3)
    raises(IndexError, lambda: s.current[3])


def _many(d, snap, n):
    for _ in range(n):
        d.read_rt(snap)


def test_rt_snapshot_allocates_nothing():
    d = RbAmp(i2c, 0x50).begin(prime=False)
    _many(d, d.rt, 5)
    micropython.heap_lock()
    try:
        _many(d, d.rt, 200)
    finally:
        micropython.heap_unlock()


def test_single_values_and_bad_channels():
    d = RbAmp(i2c, 0x50).begin(prime=False)
    near(d.voltage, 230.0, 1e-4)
    near(d.current[2], 0.1, 1e-3)
    near(d.power[0], 1150.0, 1e-2)
    near(d.reactive_power[0], 1150.0 * 1.7320508, 0.5)
    eq(d.frequency, 50)
    raises(RbAmpParamError, d.read_current, 3)
    raises(RbAmpParamError, d.read_power, -1)
    raises(RbAmpParamError, RbAmp, i2c, 0x07)


def test_nack_storm_never_returns_a_wrong_value():
    d = RbAmp(i2c, 0x50, tries=3).begin(prime=False)
    d.reset_counters()
    exact = (230.0, 10.0, -460.0)
    _sim.ctl("faults", nack=0.2, ghost="last", seed=7)
    ok = failed = 0
    try:
        for _ in range(3000):
            try:
                s = d.read_rt()
            except RbAmpIOError:
                failed += 1
                continue
            got = (s.voltage, s.current[0], s.power[1])
            for g, e in zip(got, exact):
                if abs(g - e) > 1e-3:
                    raise AssertionError("wrong value %r after %d reads" % (got, ok))
            ok += 1
    finally:
        _sim.ctl("faults", nack=0.0, ghost="keep")
    if not (d.retry_count_total > 300 and failed < 60 and d.retry_exhaustion_count == failed):
        raise AssertionError("retries %d, exhausted %d, failed %d"
                             % (d.retry_count_total, d.retry_exhaustion_count, failed))
    print("nack storm: %d good, %d failed after 3 tries, %d retries" % (ok, failed, d.retry_count_total))


def test_period_energy_matches_truth():
    d = RbAmp(i2c, 0x50).begin()
    truth0 = _sim.ctl("truth")["truth"]["ui3"]
    time.sleep_ms(2000)
    snap = d.read_period_snapshot()
    truth1 = _sim.ctl("truth")["truth"]["ui3"]
    eq(snap.valid, True)
    near(snap.avg_power[0], 1150.0, 0.01)
    near(snap.avg_power[1], 0.0, 0.0)       # BASIC: export clamped out
    near(snap.avg_power[2], 23.0, 0.001)
    got = d.energy.wh(0)
    want = truth1[0][0] - truth0[0][0]
    # the truth is sampled by control requests around the run: allow 150 ms of slack
    # (a wrong dt or a double count would be off by hundreds of ms)
    near(got, want, 1150.0 * 0.15 / 3600, "energy vs truth")
    eq(d.energy.uwh(0), snap.uwh[0])


def _after_commit():
    """Return right after a DRDY edge of the UI3 (GPIO 6): the next commit is 200 ms away."""
    flag = [0]

    def edge(p):
        flag[0] = 1

    pin = machine.Pin(6, machine.Pin.IN)
    pin.irq(edge, machine.Pin.IRQ_FALLING)
    t0 = time.ticks_ms()
    while not flag[0]:
        if time.ticks_diff(time.ticks_ms(), t0) > 1000:
            raise AssertionError("no DRDY edge on GPIO 6")
        time.sleep_ms(1)
    pin.irq(None)


def test_stale_latch_keeps_the_anchor():
    d = RbAmp(i2c, 0x50).begin()
    time.sleep_ms(500)
    _after_commit()
    d.read_period_snapshot()
    e1 = d.energy.uwh(2)
    raises(RbAmpStaleError, d.read_period_snapshot, 0)      # no RT commit in between
    eq(d.stale_count, 1)
    eq(d.energy.uwh(2), e1)
    time.sleep_ms(1000)
    snap = d.read_period_snapshot()
    near(snap.dt_ms, 1050 + 50, 60)                          # covers the stale one too
    near(d.energy.uwh(2) - e1, 23.0 * snap.dt_ms / 3.6, 30)


def test_module_reboot_restarts_the_anchor():
    d = RbAmp(i2c, 0x50).begin()
    time.sleep_ms(400)
    _sim.ctl("module_fault", module="ui3", action="reboot")
    time.sleep_ms(700)
    before = d.energy.uwh(0)
    snap = d.read_period_snapshot()
    eq((snap.gap, d.module_reboots, d.energy.uwh(0)), (True, 1, before))
    time.sleep_ms(600)
    snap = d.read_period_snapshot()
    eq(snap.gap, False)
    near(d.energy.uwh(0) - before, 1150.0 * snap.dt_ms / 3.6, 2000)


def test_skip_latch_uses_the_callers_elapsed_time():
    d = RbAmp(i2c, 0x51).begin()
    raises(RbAmpParamError, d.read_period_snapshot, 0, True)
    time.sleep_ms(300)                      # at least one RT commit since the primer
    d.latch_period()
    time.sleep_ms(60)
    snap = d.read_period_snapshot(skip_latch=True, dt_ms=3600000)
    eq(snap.dt_ms, 3600000)
    eq(d.energy.uwh(0), 0)                  # I-only: averages are 0.0 (§6.4)


run(globals())
