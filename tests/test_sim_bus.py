"""Bench vs rbamp-protocol.md §2, §6.3, §8: General Call, DRDY lines, faults, legacy firmware."""
import pytest

from simrig import MS, Rig
from tools.host.sim.bus import HANG, NACK_ADDR, NACK_DATA, OK

S = 1000000


def fleet(**kw):
    mods = [{"variant": "UI1", "address": 0x50, "gc_enable": True, "group": 1, "drdy_pin": 4,
             "channels": [{"load": 100}]},
            {"variant": "UI2", "address": 0x51, "gc_enable": True, "group": 2, "drdy_pin": 4,
             "channels": [{"load": 200}, {"load": 300}], "drift_ppm": 40},
            {"variant": "I3", "address": 0x52, "gc_enable": False, "drdy_pin": 5}]
    return Rig(mods, **kw)


def test_general_call_nacked_when_nobody_enabled():
    r = Rig([{"variant": "UI1"}])
    assert r.xfer(0x00, b"\xa5\x27\x00\x02\x01")[0] == NACK_ADDR


def test_general_call_frame_group_filter_and_tick_witness():
    r = fleet()
    for a in (0x50, 0x51, 0x52):
        r.latch(a)                                    # primers
    r.wait(S)
    assert r.xfer(0x00, b"\xa5\x27\x00\x02\x01")[0] == OK   # all-call, tick 0x0102
    r.wait(50 * MS)
    assert r.u16(0x59, 0x50) == 0x0102 and r.u16(0x59, 0x51) == 0x0102
    assert r.u16(0x59, 0x52) == 0xFFFF                # GC disabled: missed it
    assert r.u8(0x07, 0x52) == 1                       # ...yet PERIOD_VALID still 1 (§8.4)
    assert r.u16(0x4E, 0x50) != 0xFFFF                 # ZC_OFFSET measured on UI*
    r.wait(S)
    r.xfer(0x00, b"\xa5\x27\x02\x03\x00")             # group 2 only
    assert r.u16(0x59, 0x50) == 0x0102 and r.u16(0x59, 0x51) == 0x0003
    r.xfer(0x00, b"\x5a\x27\x00\x04\x00")             # wrong magic: ignored
    r.xfer(0x00, b"\xa5\x01\x00\x05\x00")             # only the latch opcode is honoured
    assert r.u16(0x59, 0x50) == 0x0102 and r.u8(0x4A, 0x50) == 0x02


def test_gc_enable_takes_effect_after_save_and_reset():
    r = Rig([{"variant": "UI1"}])
    r.wr(0x27, 0x01)
    assert r.xfer(0x00, b"\xa5\x27\x00\x01\x00")[0] == NACK_ADDR
    r.cmd(0x32)
    r.wait(700 * MS)
    r.cmd(0x01)
    r.wait(300 * MS)
    assert r.u8(0x27) == 1 and r.xfer(0x00, b"\xa5\x27\x00\x01\x00")[0] == OK


def test_gc_latch_closes_periods_like_a_local_latch():
    r = fleet()
    r.xfer(0x00, b"\xa5\x27\x00\x01\x00")
    r.wait(10 * S)
    r.xfer(0x00, b"\xa5\x27\x00\x02\x00")
    r.wait(50 * MS)
    assert r.f32(0xDC, 0x50) == pytest.approx(100) and r.f32(0xC2, 0x51) == pytest.approx(300)


def test_drdy_pulses_wired_or_and_per_module_lines():
    r = fleet()
    r.bus.take_edges()
    r.wait(2 * S)
    e = r.bus.take_edges()
    on4 = [t for p, t in e if p == 4]
    on5 = [t for p, t in e if p == 5]
    assert len(on5) == 10                              # I3 alone on GPIO 5: 5 Hz
    assert 19 <= len(on4) <= 20                        # two modules share GPIO 4
    assert r.bus.line_level(4) == 1


def test_alarm_mode_holds_the_shared_line_low():
    r = fleet()
    r.wr(0x2A, 0xFF, 0x50)
    r.wr(0x2B, 0x01, 0x50)                             # PERIOD_READY holds DRDY low
    r.bus.take_edges()
    r.cmd(0x27, 0x50)
    r.wait(S)
    e = [t for p, t in r.bus.take_edges() if p == 4]
    assert len(e) == 1 and r.bus.line_level(4) == 0    # one falling edge, then solid LOW
    r.wr(0x2A, 0x01, 0x50)                             # W1C releases
    r.wait(S)
    assert r.bus.line_level(4) == 1 and len(r.bus.take_edges()) >= 9


def test_nack_injection_rate_and_no_side_effects():
    r = Rig([{"variant": "UI1"}], faults={"nack": 0.2, "seed": 99})
    fails = sum(r.xfer(0x50, b"\x86", 56)[0] != OK for _ in range(5000))
    assert 900 <= fails <= 1100                         # ~20 %
    f = r.bus.faults
    failed = 0
    for k in range(200):
        f.nack = 0.0
        before = r.u8(0x28)
        f.nack = 0.2
        st, _ = r.xfer(0x50, bytes((0x28, k)))
        f.nack = 0.0
        after = r.u8(0x28)
        f.nack = 0.2
        assert after == (k if st == OK else before)    # a failed write changed nothing
        failed += st != OK
    assert 20 <= failed <= 60


def test_failed_read_ghost_modes():
    r = Rig([{"variant": "UI1", "channels": [{"load": 10}]}], faults={"nack": 1.0})
    assert r.xfer(0x50, b"\x86", 4) == (NACK_DATA, None)          # 'keep': host buffer as is
    r.bus.faults.ghost = "signature"
    assert r.xfer(0x50, b"\x86", 8) == (NACK_DATA, b"\x3c\x2f\xfb\x3f" * 2)
    r.bus.faults.nack = 0.0
    good = r.xfer(0x50, b"\x54", 2)[1]
    r.bus.faults.nack, r.bus.faults.ghost = 1.0, "last"
    assert r.xfer(0x50, b"\x86", 2) == (NACK_DATA, good)         # bytes of an earlier read


def test_emi_burst_and_hang():
    r = Rig([{"variant": "UI1"}])
    t = r.clock.t
    r.bus.faults.emi = (t, t + S, 0.67)
    fails = sum(r.xfer(0x50, b"\x00", 1)[0] != OK for _ in range(300))
    assert 150 <= fails <= 250
    r.wait(S)
    assert all(r.xfer(0x50, b"\x00", 1)[0] == OK for _ in range(100))
    r.bus.faults.hang = 1.0
    assert r.xfer(0x50, b"\x00", 1)[0] == HANG


def test_unplug_replug_and_power_cycle():
    r = Rig([{"variant": "UI1"}])
    r.bus.unplug(r.m)
    assert r.xfer(0x50)[0] == NACK_ADDR
    r.bus.replug(r.m)
    r.wait(300 * MS)
    assert r.u8(0x2A) & 0x20 and r.m.boots == 2
    r.bus.power_cycle(r.m, 2 * S)
    r.wait(S)
    assert r.xfer(0x50)[0] == NACK_ADDR
    r.wait(S + 300 * MS)
    assert r.u8(0x00) & 1 and r.m.boots == 3


def test_stuck_values_and_clock_drift():
    r = Rig([{"variant": "UI1", "drift_ppm": 5000,
              "channels": [{"load": {"type": "steps", "points": [[0, 10], [1, 20]],
                                     "repeat_s": 2}}]}])
    r.m.stuck = True
    a = r.rt()
    r.wait(3 * S)
    assert r.rt() == a                                 # frozen readings
    r.m.stuck = False
    r.latch()
    r.wait(10 * S)
    r.latch()
    assert r.u32(0xBE) == pytest.approx(50 * 1.005, abs=1)   # a fast crystal: more windows


def test_legacy_firmware_no_burst_and_missing_registers():
    r = Rig([{"variant": "UI1", "version": 1, "channels": [{"load": 1000}]}])
    assert r.u8(0x03) == 0x01 and r.u16(0x57) == 0 and r.u8(0x54) == 0
    burst = r.rd(0x86, 4)
    assert burst == bytes([burst[0]]) * 4              # no auto-increment: first byte repeated
    p = bytes(r.rd(0xA6 + k, 1)[0] for k in range(4))  # byte-per-transaction works
    import struct
    assert struct.unpack("<f", p)[0] == pytest.approx(1000)
    r.cmd(0x99)
    assert r.err() == 0                                # unknown opcode silently ignored
    r.wr(0x25, 1)
    assert r.u8(0x25) == 0                             # no sensor class before v1.2
    assert r.latch() == 1                              # period metering works
    assert r.xfer(0x00, b"\xa5\x27\x00\x01\x00")[0] == NACK_ADDR


def test_v12_ct_model_write_applies_to_ch0_and_accepts_code_five():
    r = Rig([{"variant": "UI2", "version": 3, "ct": [3, 3],
              "channels": [{"load": 2300}, {"load": 2300}]}])
    r.wr(0x05, 5)                                      # v1.2: the staging write binds ch0
    r.wait(300 * MS)
    assert r.err() == 0 and r.f32_bytes(0x8E) == pytest.approx(10.0 * 30 / 100, rel=1e-3)
    assert r.u8(0x51) == 0                             # no verify mirrors before v1.3
    r.wr(0x05, 4)
    r.cmd(0x29)                                        # ch1 by opcode (v1.2+)
    r.wait(300 * MS)
    assert r.f32_bytes(0x92) == pytest.approx(10.0 * 30 / 50, rel=1e-3)


def test_condition_code_option_lets_writes_erase_0xfb():
    keep = Rig([{"variant": "UI1", "virgin": True}])
    keep.wr(0x28, 1)
    assert keep.err() == 0xFB
    erase = Rig([{"variant": "UI1", "virgin": True, "keep_condition_codes": False}])
    erase.wr(0x28, 1)
    assert erase.err() == 0x00
