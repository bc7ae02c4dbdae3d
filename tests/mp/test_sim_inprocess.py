# The simulator model runs in-process on the unix port too (same code as the server's).
import struct
import sys

sys.path.append(__file__[:__file__.rfind("/tests/mp/")])  # repo root: tools.host.sim
from mptest import eq, near, run

import machine
from tools.host.sim import build
from tools.host.sim.clock import ManualClock

clock = ManualClock()
bus = build({"modules": [{"variant": "UI2", "address": 0x50,
                          "channels": [{"load": 1000}, {"load": -500}]}]}, clock)
machine.attach_sim(bus)
i2c = machine.I2C(0, freq=50000)


def test_scan_and_identity():
    clock.advance(300000)
    eq(i2c.scan(), [0x50])
    eq(i2c.readfrom_mem(0x50, 0x55, 1), b"\x02")


def test_rt_and_period_latch():
    b = bytearray(56)
    i2c.readfrom_mem_into(0x50, 0x86, b)
    v = struct.unpack("<14f", b)
    near(v[8], 1000.0, 0.01)
    near(v[9], -500.0, 0.01)
    i2c.writeto_mem(0x50, 0x01, b"\x27")  # primer
    clock.advance(10000000)
    i2c.writeto_mem(0x50, 0x01, b"\x27")
    eq(i2c.readfrom_mem(0x50, 0x07, 1), b"\x01")
    avg0 = struct.unpack("<f", i2c.readfrom_mem(0x50, 0xDC, 4))[0]
    avg1 = struct.unpack("<f", i2c.readfrom_mem(0x50, 0xC2, 4))[0]
    near(avg0, 1000.0, 0.01)
    eq(avg1, 0.0)  # BASIC: export clamped out of the period average


def test_ground_truth():
    imp, exp = bus.modules[0].truth_wh(1)
    eq(imp, 0.0)
    # the last read's bytes are clocked a few ms past the bus clock (bus-time model)
    near(exp, 500.0 * 10.3 / 3600, 1e-4)


run(globals())
