"""Bench vs rbamp-protocol.md: identity, boot timeline, RT block, encodings, reads."""
import math
import struct

import pytest

from simrig import MS, Rig
from tools.host.sim.bus import NACK_ADDR, OK


@pytest.mark.parametrize("variant,hw,cap,n,volt", [
    ("UI1", 1, 0x079E, 1, True), ("UI2", 2, 0x079E, 2, True), ("UI3", 3, 0x079E, 3, True),
    ("I1", 4, 0x069E, 1, False), ("I2", 5, 0x069E, 2, False), ("I3", 6, 0x069E, 3, False)])
def test_identity_registers_per_variant(variant, hw, cap, n, volt):
    r = Rig([{"variant": variant, "uid": "00112233445566778899aabb", "tier": 1}])
    assert r.u8(0x54) == 0x01 and r.u8(0x55) == hw and r.u16(0x57) == cap
    assert bool(r.u8(0x58) & 1) == volt  # has_voltage = CAPABILITY bit 8 (§3.13)
    assert r.u8(0x24) == n and r.u8(0x03) == 0x04 and r.u8(0x04) == 0
    assert r.rd(0x5C, 12).hex() == "00112233445566778899aabb"
    assert r.u8(0x56) & 0x07 == 0x05  # STANDARD + bidirectional accumulators
    assert r.u16(0x59) == 0xFFFF      # no GC frame since boot
    assert r.u16(0x4E) == (0xFFFF if not volt else 0)


def test_boot_timeline():
    r = Rig(settle=False)
    assert r.xfer(0x50)[0] == NACK_ADDR          # < 10 ms: address not ACKed
    r.wait(10 * MS)
    assert r.xfer(0x50)[0] == OK
    assert r.u8(0x00) & 1 == 0 and r.err() == 0xFC  # not ready, NOT_READY
    assert r.rt() == (0.0,) * 14
    assert r.u8(0x2A) == 0x20 and r.u8(0x00) & 0x04  # RESET_OCCURRED, EVENTS_PENDING
    r.wait(41 * MS)                               # first commit at ~50 ms
    assert r.u8(0x00) & 1 and r.err() == 0x00
    assert r.u8(0xCE) == 0                        # RT_STATUS a little later (60-80 ms)
    r.wait(30 * MS)
    assert r.u8(0xCE) == 1
    assert r.u8(0x4A) == 0x02                     # RESET_CAUSE: power-on


def test_rt_block_values_and_encoding():
    r = Rig([{"variant": "UI3", "ct": [3, 3, 3],
              "channels": [{"load": 1000, "pf": 0.8}, {"load": -1500.5},
                           {"load": 100, "pf": 0.5, "capacitive": True}]}])
    u, upk, i0, i1, i2, ip0, ip1, ip2, p0, p1, p2, pf0, pf1, pf2 = r.rt()
    assert u == 230.0 and upk == pytest.approx(230 * math.sqrt(2), rel=1e-6)
    assert i0 == pytest.approx(1250 / 230, rel=1e-5)   # S = P / PF
    assert ip0 == pytest.approx(i0 * math.sqrt(2), rel=1e-6)
    assert p1 == pytest.approx(-1500.5, rel=1e-6) and pf1 == pytest.approx(-1.0, abs=1e-6)
    # the noise-floor subtraction lowers I a little, so |PF| reads a hair high
    assert pf0 == pytest.approx(0.8, abs=1e-4) and pf2 == pytest.approx(0.5, abs=1e-4)
    q0, q1, q2 = struct.unpack("<3f", r.rd(0xD0, 12))
    assert q0 == pytest.approx(750, rel=1e-5) and q1 == 0.0 and q2 < 0  # capacitive
    # §4.1 example: -1500.5 W is 00 90 BB C4 at P1
    assert r.rd(0xAA, 4) == b"\x00\x90\xbb\xc4"
    assert r.u8(0x20) == 50 and r.u16(0x21) == 10000


def test_current_only_variant_reads_zero_voltage_power():
    r = Rig([{"variant": "I2", "channels": [{"load": 2300}, {"load": 460}]}])
    v = r.rt()
    assert v[0] == v[1] == 0.0 and v[8:14] == (0.0,) * 6
    assert v[2] == pytest.approx(10.0, rel=1e-4) and v[3] == pytest.approx(2.0, rel=1e-4)
    assert v[4] == 0.0                            # absent ch2 reads 0, never NACK
    assert r.u8(0x20) == 50                       # frequency on all variants in v1.3


def test_noise_floor_and_wrong_ct_scaling():
    r = Rig([{"variant": "UI2", "ct": [3, 3], "fitted": [3, 3],
              "channels": [{"load": 0.5}, {"load": 2300}]}])
    assert r.rt()[2] == 0.0                       # 2 mA on a 30 A clamp: below the floor
    # declare ch1 as 50 A while a 30 A clamp is fitted: reads 30/50 of the truth (§9.1)
    r.wr(0x05, 4)
    r.cmd(0x29)
    r.wait(300 * MS)
    assert r.rt()[3] == pytest.approx(10.0 * 30 / 50, rel=1e-3)


def test_unmapped_reserved_and_stream_port():
    r = Rig([{"variant": "UI1", "channels": [{"load": 2300}]}])
    assert r.rd(0x32, 4) == b"\x00" * 4 and r.rd(0x36, 16) == b"\x00" * 16
    assert r.u8(0xCF) == 0 and r.u8(0x31) == 0   # reserved; magic reads 0
    assert r.wr(0x40, 0x12) == OK and r.err() == 0   # reserved write silently dropped
    r.wr(0x54, 0x02)                               # read-only register: rejected
    assert r.err() == 0xFE and r.u8(0x54) == 1
    r.cmd(0x38)
    r.wait(90 * MS)
    assert r.u8(0x18) == 1
    r.wr(0x19, 2)
    page = r.rd(0x1A, 64)
    codes = struct.unpack("<32H", page)
    assert all(c < 4096 for c in codes) and len(set(codes)) > 1
    assert r.u8(0x20) == 50                        # a read at 0x20 follows the normal map
    r.wr(0x19, 9)
    assert r.err() == 0xFE


def test_burst_is_frozen_but_bytes_and_q_block_tear():
    # windows alternate: [0.0, 0.2) s +1000.7 W, [0.2, 0.4) s -1234.3 W, ... (pf 0.5)
    r = Rig([{"variant": "UI1", "first_commit_us": 200000,
              "channels": [{"load": {"type": "steps", "points": [[0, 1000.7], [0.2, -1234.3]],
                                     "repeat_s": 0.4}, "pf": 0.5}]}], settle=False)
    r.clock.t = 1199 * MS        # 1 ms before the commit at 1.2 s; a 56-byte burst takes 11 ms
    rt = r.rt()                  # all from the window [0.8, 1.0) s: +1000.7 W
    assert rt[8] == pytest.approx(1000.7) and rt[11] == pytest.approx(0.5, abs=1e-4)
    assert rt[2] == pytest.approx(1000.7 / 0.5 / 230, rel=1e-4)   # same window as P
    r.clock.t = 1399300          # Q is outside the freeze (§2.6): byte 2 is clocked after 1.4 s
    q0 = struct.unpack("<f", r.rd(0xD0, 12)[:4])[0]
    tan = math.tan(math.acos(0.5))
    assert q0 != pytest.approx(1234.3 * tan) and q0 != pytest.approx(1000.7 * tan)
    # byte-per-transaction reads across a commit splice two windows into one float
    r.clock.t = 1599 * MS
    b = bytearray(4)
    for k in range(4):
        b[k] = r.rd(0xA6 + k, 1)[0]
        r.clock.t += 400
    spliced = struct.unpack("<f", bytes(b))[0]
    assert spliced != pytest.approx(1000.7) and spliced != pytest.approx(-1234.3)
    assert r.f32(0xA6) == pytest.approx(-1234.3)  # a fresh read: the window [1.4, 1.6) s


def test_bus_time_and_counters():
    r = Rig()
    c = r.bus.counter(0x50)
    t0, b0, us0 = c.transactions, c.bytes, c.bus_us
    r.rt()
    assert c.transactions - t0 == 1 and c.bytes - b0 == 57
    # S/P (2) + addr W + reg (18) + Sr + addr R (10) + 56 data bytes (504) bits at 50 kHz
    assert c.bus_us - us0 == pytest.approx((2 + 18 + 10 + 504) * 20, abs=1)


def test_collision_two_modules_on_one_address_and_together():
    r = Rig([{"variant": "UI1", "address": 0x50}, {"variant": "I3", "address": 0x50}])
    assert r.u8(0x55) == (1 & 6)                  # open-drain: bits ANDed on the wire
