# lib/rbnode parts on the unix port: integer power decoding, limb accumulators, the
# allocation-free sampling path, step events, and the two-slot ledger.
# sim: tools/host/sim/scenarios/energy.json
# timeout: 120
import os
import struct

import _sim
import machine
import micropython
from mptest import eq, near, raises, run

from rbamp.energy import to_mw
from rbnode import config
from rbnode.measure.events import StepDetector
from rbnode.integrate import Accumulators, f32_mw
from rbnode.ledger import Ledger, LedgerError, decode, encode
from rbnode.measure.meter import Meter

i2c = machine.I2C(0, freq=50000)


def test_f32_mw_matches_float_rounding():
    b = bytearray(4)
    vals = [0.0, -0.0, 1e-9, 0.0004, 0.0005, 0.0006, 1.0, -1.0, 0.1234567, 229.99, -1500.25,
            2999.9995, 29999.99, -29999.99, 12345.678]
    x = 0.37
    for i in range(400):
        x = (x * 7919.31 + 0.123) % 60000.0 - 30000.0
        vals.append(x)
        vals.append(x / 1e4)
    for v in vals:
        struct.pack_into("<f", b, 0, v)
        f = struct.unpack_from("<f", b, 0)[0]
        want = to_mw(f)
        got = f32_mw(b, 0)
        if abs(got - want) > 1 + (abs(want) >> 23):   # 23 of the 24 mantissa bits are used
            raise AssertionError("%r: %d != %d" % (f, got, want))


def test_accumulators_are_exact_and_stay_small_ints():
    a = Accumulators(2)
    total = 0
    mw, ms = 1, 1
    for i in range(3000):
        mw = (mw * 48271 + 11) % 30000001        # up to 30 kW
        ms = (ms * 1103 + 7) % 2048              # up to the 2 s bridge
        a.add(0, mw, ms)
        total += mw * ms
        for limb in a.a:
            if not 0 <= limb < (1 << 30):        # a small int on 32-bit ports too
                raise AssertionError("limb %d out of small-int range" % limb)
    eq(a.peek_uwh(0), total // 3600)
    eq(a.take_uwh(0), total // 3600)
    eq(a.take_uwh(0), 0)                          # the remainder stays for later
    a.add(0, 3600 - total % 3600, 1)
    eq(a.take_uwh(0), 1)


def test_step_detector_fires_on_settled_steps_only():
    d = StepDetector(1, threshold_w=100, threshold_pct=20, settle=3)
    seq = [500000] * 5 + [2500000] + [500000] * 5          # a one-window spike: nothing
    seq += [1500000] * 4                                    # a settled step: one event
    seq += [1520000, 1490000] * 3                           # noise below threshold
    fired = [(i, d.before, d.after) for i, w in enumerate(seq) if d.update(0, w)]
    eq(len(fired), 1)
    i, before, after = fired[0]
    eq(i, 13)
    eq((before, after), (500000, 1500000))
    # a step inside a window: its first window is part old level, part new; the event's
    # "after" is the new level, not an average with that window
    d = StepDetector(1, threshold_w=100, threshold_pct=20, settle=3)
    fired = [(d.before, d.after) for w in [500000] * 5 + [1300000] + [1500000] * 2
             if d.update(0, w)]
    eq(fired, [(500000, 1500000)])


def _meter():
    spec = config.check({"modules": [{"address": 0x50, "name": "ui3"}]})[0]["modules"][0]
    m = Meter(spec, i2c, 3, config.defaults()["events"])
    assert m.detect()
    return m


def test_sampling_path_allocates_nothing():
    m = _meter()
    events = []
    m.on_event = lambda *a: events.append(a)
    for ch, w in ((0, 1500), (1, -300), (2, 60)):
        _sim.ctl("set_load", module="ui3", ch=ch, load=w)
    m.shadow.export = True
    import time
    time.sleep_ms(450)                       # two RT windows with the new loads
    t = 1000
    m.read()
    m.sample(t)
    micropython.heap_lock()
    try:
        for i in range(50):
            t += 200
            if not m.read():
                raise AssertionError("read failed")
            m.sample(t)
    finally:
        micropython.heap_unlock()
    eq(m.samples, 51)
    eq(m.p[:3], [1500000, -300000, 60000])
    eq(m.shadow.acc.peek_uwh(0), 1500000 * 200 * 50 // 3600)      # ch0 import shadow
    eq(m.shadow.acc.peek_uwh(3), 300000 * 200 * 50 // 3600)       # ch1 export


def test_settle_books_no_power_into_the_window_not_read_yet():
    """A ledger save in the middle of a window integrates up to the end of the last window
    read: the next window is booked with its own power (here 3 kW), not the held 1 kW."""
    m = _meter()
    import time
    for ch, w in ((0, 1000), (1, 0), (2, 0)):
        _sim.ctl("set_load", module="ui3", ch=ch, load=w)
    time.sleep_ms(450)
    m.shadow.lag = 200                              # sample times are DRDY edges (window ends)
    for t in (1000, 1200):
        m.read()
        m.sample(t)
    m.shadow.settle()                               # a save at 1250: integrate to 1200, not 1250
    eq(m.shadow.t_rt, 1200)
    eq(m.shadow.acc.peek_uwh(0), 1000000 * 400 // 3600)
    _sim.ctl("set_load", module="ui3", ch=0, load=3000)
    time.sleep_ms(450)
    for t in (1400, 1600):                   # the window [1200, 1400] is the 3 kW one
        m.read()
        m.sample(t)
    eq(m.shadow.acc.peek_uwh(0), (1000000 * 400 + 3000000 * 200) // 3600)


def _fleet():
    cfg = config.check({"drdy_pin": 4, "modules": [
        {"address": 0x50 + i, "name": n} for i, n in enumerate(
            ("ui3", "basic-pv", "standard", "currents"))]})[0]
    ms = [Meter(spec, i2c, 3, config.defaults()["events"]) for spec in cfg["modules"]]
    for m in ms:
        assert m.detect()
    return ms


def _sample_for(sampler, ms, during=None):
    import asyncio

    async def go():
        task = asyncio.create_task(sampler.run())
        await asyncio.sleep_ms(ms // 2)
        if during:
            during()
        await asyncio.sleep_ms(ms - ms // 2)
        task.cancel()
        await asyncio.sleep_ms(0)
    asyncio.run(go())


def _phase_errors(ms):
    """ms from each meter's last window edge to the simulator's commit instant, modulo 200."""
    import time
    best = None            # host ms - simulated ms, from the quickest of a few round trips
    for _ in range(5):     # (a loaded host stretches one: its midpoint is then off)
        t0 = time.ticks_ms()
        sim_ms = _sim.ctl("time")["t_us"] // 1000
        rtt = time.ticks_diff(time.ticks_ms(), t0)
        if best is None or rtt < best[0]:
            best = (rtt, time.ticks_diff(t0 + rtt // 2, 0) - sim_ms)
    off = best[1]
    commits = {d["name"]: d["last_commit_us"] for d in _sim.ctl("modules")["modules"]}
    out = {}
    for m in ms:
        d = (time.ticks_diff(m.shadow.t_read, 0) - off - commits[m.id] // 1000) % 200
        out[m.id] = min(d, 200 - d)
    return out


def _check_phases(sampler, ms):
    """Every module is timed within 8 ms of its own commit: best of three windows, as the
    host may stall the node past one edge (a late stamp, which the next edge corrects);
    another module's edge would be >= 40 ms off every time."""
    errs = _phase_errors(ms)
    for _ in range(2):
        _sample_for(sampler, 200)
        errs = {k: min(v, errs[k]) for k, v in _phase_errors(ms).items()}
    for name, err in errs.items():
        if err > 8:
            raise AssertionError("%s timed %d ms off its own edge: %r" % (name, err, errs))


def test_shared_line_times_each_module_by_its_own_edge():
    """Four modules on one wired-OR DRDY line, one rebooted out of phase with the others:
    SEQ tells whose edge it was, so every module is timed by its own (the newest edge of
    any module was used before, up to a window off), its fast reboot (no gap in the edges)
    is seen, and a module is read only when it has a new window."""
    from rbnode.board import Board
    from rbnode.measure.sampler import Sampler
    ms = _fleet()
    s = Sampler(ms, Board(), shared_pin=4)

    def reboot():
        _sim.ctl("module_fault", module="ui3", action="reboot")
    import time
    for attempt in range(5):                 # until the reboot puts ui3 >= 40 ms off phase
        time.sleep_ms(70 * attempt)          # 1.6 s is whole windows: shift the reboot's phase
        _sample_for(s, 1600, reboot)
        c = {d["name"]: d["last_commit_us"] for d in _sim.ctl("modules")["modules"]}
        d = (c["ui3"] - c["standard"]) // 1000 % 200
        if 40 <= d <= 160:
            break
    else:
        raise AssertionError("the reboots kept ui3 in phase with the others")
    eq([q.restarts for q in s.seqs], [attempt + 1, 0, 0, 0])
    _check_phases(s, ms)
    eq(ms[0].shadow.blackout[1] != 0, True)
    # two edges per window now, but every module is read once per window: 5 in 1 s
    n = [m.samples for m in ms]
    _sample_for(s, 1000)
    for m, k in zip(ms, n):
        if not 4 <= m.samples - k <= 6:
            raise AssertionError("%s: %d samples in 5 windows" % (m.id, m.samples - k))


def test_late_stamp_is_not_a_restart():
    """An edge stamped late (the IRQ held off by a long blocking call, the host stalled):
    the next SEQ step is one window in less than 200 ms. That is not a restart (no
    blackout), and the next edge puts the module back on its phase."""
    from time import ticks_add
    from rbnode.board import Board
    from rbnode.measure.sampler import Sampler
    ms = _fleet()
    s = Sampler(ms, Board(), shared_pin=4)
    _sample_for(s, 600)
    for late in (40, 100, 160):
        for m in ms:
            m.shadow.t_read = ticks_add(m.shadow.t_read, late)
        _sample_for(s, 400)
        eq([q.restarts for q in s.seqs], [0, 0, 0, 0], "stamp %d ms late" % late)
    _check_phases(s, ms)


def test_seq_path_allocates_nothing():
    """SEQ check, read and booking of a module on a shared line, under heap_lock."""
    import time
    from rbnode.board import Board
    from rbnode.measure.sampler import Sampler
    ms = _fleet()
    s = Sampler(ms, Board(), shared_pin=4)
    _sample_for(s, 500)
    n = [m.samples for m in ms]
    for i in range(6):
        time.sleep_ms(200)
        micropython.heap_lock()
        try:
            for j in range(len(ms)):
                s.ready[j] = 1
            s._round(False)
        finally:
            micropython.heap_unlock()
    for m, k in zip(ms, n):
        if not 5 <= m.samples - k <= 7:
            raise AssertionError("%s: %d samples in 6 windows" % (m.id, m.samples - k))


def test_sleep_state_rejects_garbage_and_names_why():
    from rbnode.sleep.rtcstate import SIZE, StateError, pack, unpack
    led = Ledger("unused")
    led.meter("uid1", "a", 0x50, 2)
    led.add("uid1", 1, 5000, 7)
    data = pack(led, {"uid1": 1234567}, 9, 0)
    doc = unpack(data)
    eq((doc["meters"]["uid1"]["ch"], doc["anchors"], doc["wakes"]), ([[0, 0], [5000, 7]],
                                                                    {"uid1": 1234567}, 9))
    for bad, why in ((b"", "empty"), (b"\x00" * 40, "magic"), (b"RBS\x02" + data[4:], "version"),
                     (data[:20] + bytes([data[20] ^ 1]) + data[21:], "CRC"),
                     (data[:-3], "CRC"), (b"RBS\x01\xff\xfe garbage\n0000\n", "corrupted")):
        e = raises(StateError, unpack, bad)
        if why not in str(e):
            raise AssertionError("%r: %s" % (why, e))
    for i in range(40):                      # no wider than RTC memory, however many meters
        led.meter("u%032d" % i, "meter %d" % i, 0x50, 3)
    e = raises(StateError, pack, led, {}, 1, 0)
    assert str(SIZE) in str(e)


def test_ledger_two_slots_survive_a_torn_write():
    for f in ("t.0", "t.1"):
        try:
            os.remove(f)
        except OSError:
            pass
    led = Ledger("t")
    eq(led.load(), 0)
    led.meter("uid1", "a", 0x50, 2)
    led.add("uid1", 0, 5000, 0)
    eq(led.save(), 1)
    led.add("uid1", 1, 7, 3)
    eq(led.save({"uid1": [[100, 0], [0, 4]]}), 2)         # provisional energy saved too
    with open("t.1") as f:                                 # slot 1 holds save #1
        text = f.read()
    with open("t.1", "w") as f:                            # a new save torn by a power cut
        f.write(text[:len(text) // 2])
    again = Ledger("t")
    eq(again.load(), 2)
    eq(again.total("uid1", 0), (5100, 0))
    eq(again.total("uid1", 1), (7, 7))                     # with the provisional export
    raises(LedgerError, decode, text[:-3] + "000\n")
    eq(decode(encode({"v": 1, "seq": 9, "meters": {}}))["seq"], 9)
    again.add("uid1", 0, -1, 0)                            # refused, counted
    eq((again.rejected, again.total("uid1", 0)), (1, (5100, 0)))
    eq(again.save(), 3)                                    # never below what was saved
    eq(Ledger("t").load(), 3)
    led3 = Ledger("t")
    led3.load()
    eq(led3.total("uid1", 0), (5100, 0))


def test_detect_never_raises_on_a_noisy_bus():
    # 30 % of transactions NACKed: a detection either finds the module or says why; a bus
    # error anywhere in it (the CT models read for the log line too) must not escape and
    # crash the node (in sleep mode that is a wake lost; three in a row: safe mode)
    spec = config.check({"modules": [{"address": 0x50, "name": "ui3"}]})[0]["modules"][0]
    _sim.ctl("faults", nack=0.3, seed=21)
    found = missing = 0
    try:
        for i in range(60):
            m = Meter(spec, i2c, 3, config.defaults()["events"])
            if m.detect():
                found += 1
            else:
                missing += 1
                assert m.problem, "a failed detection names its reason"
    finally:
        _sim.ctl("faults", nack=0.0)
    assert found > 10 and missing > 0, (found, missing)


def test_a_reboot_period_is_judged_at_its_latch_not_at_its_booking():
    """The period in which a module rebooted is booked from the shadow as it was at the
    latch: the windows read between the latch and the booking of its snapshot (the node
    waits for the snapshot and retries a NACKed read meanwhile, the sampler goes on) belong
    to the next period. At a constant 2 kW the period holds 2 kW x the time between the two
    latches' last commits, however late the snapshot is read. (Last in the file: its reboots
    leave ui3 at any phase, the shared-line tests want it in phase or >= 40 ms off.)"""
    from time import ticks_diff
    from rbnode.board import Board
    from rbnode.measure.sampler import Sampler
    m = _meter()
    for ch, w in ((0, 2000), (1, 0), (2, 0)):
        _sim.ctl("set_load", module="ui3", ch=ch, load=w)
    s = Sampler([m], Board(), shared_pin=4)
    sh = m.shadow
    _sample_for(s, 600)
    for late_ms in (0, 450):
        sh.close_segment(m.dev.prime())    # the period starts at a latch
        sh.take_closed()
        c_prev = sh.c_last
        _sample_for(s, 1200, lambda: _sim.ctl("module_fault", module="ui3", action="reboot"))
        _sample_for(s, 600)
        t = m.dev.latch_period()
        sh.close_segment(t)
        _sample_for(s, late_ms + 10)         # two more windows read before the booking
        snap = m.dev.read_period_snapshot(latched_at=t)
        eq(snap.gap, True)
        got = m.booking.rebooted(snap, sh)[0]
        want = 2000000 * ticks_diff(sh.c_last, c_prev) // 3600
        near(got, want, 2000000 * 20 // 3600, "(snapshot read %d ms after the latch)" % late_ms)


run(globals())

