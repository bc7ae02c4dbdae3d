"""Bench vs rbamp-protocol.md §7: period latch state machine, stale latches, tiers, truth."""
from types import SimpleNamespace

import pytest

from simrig import MS, Rig
from tools.host.sim.control import Control
from tools.host.sim.loads import Switch

S = 1000000


def test_latch_right_after_boot_is_empty():
    r = Rig(settle=False)
    r.wait(20 * MS)                      # before the first RT commit
    assert r.latch() == 0                # nothing accumulated: empty latch
    assert r.u8(0x2A) & 0x01 == 0        # no PERIOD_READY


def test_primer_then_valid_snapshot_and_fields():
    r = Rig([{"variant": "UI1", "channels": [{"load": 1000}]}], settle=False)
    r.wait(500 * MS)
    assert r.latch() == 1                # primer: covers power-on -> now (to be discarded)
    r.wait(10 * S - 50 * MS)
    assert r.latch() == 1
    assert r.f32(0xDC) == pytest.approx(1000.0)
    assert r.f32(0xE0) == pytest.approx(1000.0)              # MAX_P of ch0
    assert r.u32(0xBE) == 50                                  # RT windows in the period
    chip = r.u32(0xEC)
    assert 0.70 <= chip / 10000 <= 0.75                       # chip timer under-counts (§7.6)
    assert r.u32(0xCA) == chip
    assert r.u8(0x2A) & 0x01                                  # PERIOD_READY
    assert r.u8(0x07) == 1 and r.u8(0x07) == 1                # a level: reading keeps it


def test_stale_latch_preserves_the_period_and_snapshot():
    # 100 W for 1 s, then 300 W: a stale latch in between must not lose the 100 W part
    r = Rig([{"variant": "UI1", "first_commit_us": 200000,
              "channels": [{"load": {"type": "steps", "points": [[0, 100], [1.6, 300]]}}]}],
            settle=False)
    r.clock.t = 601 * MS
    r.bus.advance(r.clock.t)
    assert r.latch() == 1                 # primer at 0.601 s (windows up to 0.6 s)
    r.clock.t = 1201 * MS
    assert r.latch() == 1                 # 3 windows of 100 W
    snap = r.f32(0xDC)
    assert snap == pytest.approx(100.0)
    assert r.latch() == 0                 # 50 ms later: no RT commit since -> stale
    assert r.f32(0xDC) == snap            # snapshot registers left as they were
    assert r.u8(0x07) == 0
    r.clock.t = 2201 * MS
    assert r.latch() == 1                 # covers 1.2 .. 2.2 s: 2 windows 100 W, 3 of 300 W
    assert r.f32(0xDC) == pytest.approx((2 * 100 + 3 * 300) / 5)
    assert r.u32(0xBE) == 5


def test_latch_spacing_under_one_window_is_stale():
    r = Rig([{"variant": "UI1", "channels": [{"load": 50}]}])
    assert r.latch() == 1
    stale = 0
    for _ in range(20):
        r.wait(100 * MS)                  # 100 ms + 50 ms settle between latches
        stale += r.latch() == 0
    assert 5 <= stale <= 15               # only latches with a commit in between are valid


def test_latch_race_option_makes_a_rare_stale():
    r = Rig([{"variant": "UI1", "latch_race_us": 2000, "first_commit_us": 200000}], settle=False)
    r.clock.t = 1001 * MS                 # 1 ms after the commit at 1.0 s
    assert r.latch() == 0


def test_basic_tier_clamps_export_out_of_the_average():
    r = Rig([{"variant": "UI1", "tier": 0, "channels": [{"load": -800}]}])
    r.latch()
    r.wait(2 * S)
    assert r.latch() == 1
    assert r.rt()[8] == pytest.approx(-800.0)     # signed RT power shows the export
    assert r.f32(0xDC) == 0.0 and r.f32(0xE0) == 0.0
    assert r.u8(0x56) & 0x07 == 0                 # FW_TIER: BASIC, unidirectional


def test_standard_tier_keeps_export_off_page_zero():
    # 600 W for 0.4 s then -400 W for 0.6 s, aligned with the 200 ms windows
    r = Rig([{"variant": "UI1", "tier": 1, "first_commit_us": 200000,
              "channels": [{"load": {"type": "steps", "points": [[0, 600], [0.4, -400]],
                                     "repeat_s": 1.0}}]}], settle=False)
    r.clock.t = 1010 * MS
    r.latch()
    r.clock.t = 11010 * MS
    assert r.latch() == 1
    assert r.f32(0xDC) == pytest.approx(240.0)      # import average: mean of max(P, 0)
    assert r.m.snap_exp[0] == pytest.approx(240.0)  # export average: [SKU-DATASHEET] only
    assert r.u8(0x56) & 0x04                        # bidirectional bit


def test_current_only_variant_latches_with_zero_averages():
    r = Rig([{"variant": "I3", "channels": [{"load": 1000}, {"load": 2000}, {"load": 10}]}])
    r.latch()
    r.wait(S)
    assert r.latch() == 1
    assert (r.f32(0xDC), r.f32(0xC2), r.f32(0xC6), r.f32(0xE0)) == (0.0, 0.0, 0.0, 0.0)


def test_three_channel_averages_and_max():
    r = Rig([{"variant": "UI3", "channels": [
        {"load": {"type": "steps", "points": [[0, 100], [0.5, 2000]], "repeat_s": 1.0}},
        {"load": 250}, {"load": 75}]}])
    r.latch()
    r.wait(4 * S)
    assert r.latch() == 1
    assert r.f32(0xDC) == pytest.approx(1050, rel=0.03)
    assert r.f32(0xC2) == pytest.approx(250) and r.f32(0xC6) == pytest.approx(75)
    assert r.f32(0xE0) == pytest.approx(2000)


def test_master_algorithm_matches_ground_truth():
    """The normative master algorithm (§7.7) against the simulator's truth over 10 minutes.
    A constant channel is exact; a varying one is off by at most the partial RT window at
    each end of the run (the latch closes whole windows), never more."""
    r = Rig([{"variant": "UI2", "channels": [
        {"load": [{"type": "constant", "w": 300},
                  {"type": "appliance", "w": 2000, "on_s": 20, "off_s": 45, "seed": 4},
                  {"type": "noise", "sigma_w": 20}]},
        {"load": 900}]}])
    t0 = [r.m.truth_wh(ch)[0] for ch in range(2)]
    anchor = r.clock.t
    r.latch()
    e = [0.0, 0.0]
    for _ in range(10):
        r.wait(60 * S - 50 * MS)
        t_latch = r.clock.t
        t1 = [r.m.truth_wh(ch)[0] for ch in range(2)]
        assert r.latch() == 1
        dt = t_latch - anchor
        e[0] += r.f32(0xDC) * dt / 3.6e9
        e[1] += r.f32(0xC2) * dt / 3.6e9
        anchor = t_latch
    truth = [t1[ch] - t0[ch] for ch in range(2)]
    assert e[1] == pytest.approx(truth[1], rel=1e-6)
    assert abs(e[0] - truth[0]) <= 2 * 0.2 * 2400 / 3600


def test_ground_truth_is_exact_and_keeps_running_while_unplugged():
    r = Rig([{"variant": "UI1", "channels": [{"load": 1000}]}], settle=False)
    r.wait(60 * S)
    assert r.m.truth_wh(0) == (pytest.approx(1000 / 60), 0.0)
    r.bus.unplug(r.m)
    r.wait(60 * S)
    assert r.m.truth_wh(0)[0] == pytest.approx(2000 / 60)   # the load kept drawing power
    r.bus.replug(r.m)
    r.wait(300 * MS)
    assert r.u8(0x2A) & 0x20                                # it rebooted


def test_solar_export_truth_and_signed_rt():
    r = Rig([{"variant": "UI1", "channels": [{"load": {"type": "solar", "peak_w": 3000,
                                                        "day_s": 100}}]}], settle=False)
    r.wait(25 * S)
    p = r.rt()[8]
    assert p == pytest.approx(-3000, rel=0.01)             # noon: peak export
    r.wait(75 * S)
    imp, exp = r.m.truth_wh(0)
    assert imp == 0.0
    assert exp == pytest.approx(3000 * 50 * 2 / 3.141592653589793 / 3600, rel=0.01)


def test_module_reboot_mid_period_restarts_the_live_period():
    r = Rig([{"variant": "UI1", "channels": [{"load": 500}]}])
    r.latch()
    r.wait(5 * S)
    r.m.reboot(r.clock.t)
    assert r.xfer(0x50)[0] != 0                     # NACK while it boots
    r.wait(1 * S)
    assert r.u8(0x2A) & 0x20 and r.u8(0x4A) == 0x08  # RESET_OCCURRED, cause watchdog
    assert r.u32(0x46) <= 1                          # UPTIME dropped
    assert r.latch() == 1
    assert r.u32(0xBE) <= 6                          # only windows since the reboot


def _period_vs_truth(act):
    """A UI1 period from 1 µs after one RT commit to 1 µs after another, act(rig, set_load)
    in between; returns (its windows' energy: average x windows x 200 ms, truth import,
    truth export), in Wh. Loads are set through the control socket, as tests do."""
    r = Rig([{"variant": "UI1", "channels": [{"load": 1000}]}])
    ctl = Control(SimpleNamespace(bus=r.bus, clock=r.clock))

    def set_load(w):
        assert ctl.handle({"op": "set_load", "module": r.m.name, "ch": 0, "load": w})["ok"]

    r.wait(r.m.next_commit - r.clock.t + 1)     # the period and the truth start together
    t0 = r.m.truth_wh(0)
    r.latch()
    act(r, set_load)
    r.wait(r.m.next_commit - r.clock.t + 1)
    t1 = r.m.truth_wh(0)
    assert r.latch() == 1
    assert not isinstance(r.m.channels[0].profile.before, Switch)   # no chain of old loads
    return r.f32(0xDC) * r.u32(0xBE) * 0.2 / 3600, t1[0] - t0[0], t1[1] - t0[1]


def test_load_set_inside_a_window_counts_from_that_instant():
    """A load changed by the control socket while a window is open: the window keeps the old
    load up to the change, as the truth does, so the latched energy equals the truth. (The
    module integrates the open window at its commit; with the new load for the whole window
    every change was off by the step x the time since the last commit.)"""
    def act(r, set_load):
        for w, wait_us in ((3000, 1234567), (250, 2077000), (1800, 3051000), (0, 919000),
                           (1200, 2500000)):
            r.wait(wait_us)
            set_load(w)
        r.wait(3 * S)

    wh, imp, _ = _period_vs_truth(act)
    assert wh == pytest.approx(imp, rel=1e-6)


def test_import_and_export_inside_one_window_net_out():
    """The limit of any 200 ms window meter: a window with 120 ms of 1000 W import and 80 ms
    of 1500 W export reports their net, 0 W (BASIC clamps a window at 0), so import and
    export are both 120 J below the truth. The node's tests let loads change sign via 0 W."""
    def act(r, set_load):
        r.wait(r.m.next_commit - r.clock.t + 120000 - 1)     # 120 ms into a window
        set_load(-1500)

    wh, imp, exp = _period_vs_truth(act)
    assert exp == pytest.approx(1500 * 0.08 / 3600, rel=1e-3)      # 120 J exported
    assert wh == pytest.approx(imp - 1000 * 0.12 / 3600, rel=1e-4)
