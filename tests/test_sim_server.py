"""The simulator: I2C framing, control requests while a client runs, bad requests."""
import socket
import struct
import time

import pytest

from tools.host.sim.client import BenchError


class I2CLink:
    """The node side of the I2C channel (as tools/host/board/_i2c.py speaks it), in CPython."""

    def __init__(self, addr):
        self.s = socket.create_connection(addr, timeout=5)
        self.s.sendall(b"I2C\n")
        self.f = self.s.makefile("rb")

    def xfer(self, addr, w=b"", n=0):
        self.s.sendall(struct.pack("<BBBH", 1, addr, len(w), n) + bytes(w))
        st, k = struct.unpack("<BH", self.f.read(3))
        return st, self.f.read(k)

    def f32(self, addr, reg):
        st, d = self.xfer(addr, [reg], 4)
        assert st == 0
        return struct.unpack("<f", d)[0]


def test_loads_and_faults_change_while_a_client_reads(bench):
    ctl = bench.client()
    link = I2CLink(bench.address)
    time.sleep(0.3)
    ctl.set_load(module="solar-house", ch=0, load=1234.5)
    time.sleep(0.45)                                   # at least one RT commit later
    assert link.f32(0x51, 0xA6) == pytest.approx(1234.5)
    ctl.set_load(module=0x52, ch=2, load={"type": "constant", "w": -460}, pf=0.5)
    time.sleep(0.45)
    assert link.f32(0x52, 0x96) == pytest.approx(4.0, rel=1e-3)   # I-only: current only
    ctl.faults(nack=1.0)
    assert link.xfer(0x50, [0x00], 1)[0] == 2
    ctl.faults(nack=0.0)
    ctl.module_fault(module="mains", action="unplug")
    assert link.xfer(0x50)[0] == 1
    ctl.module_fault(module="mains", action="replug")
    time.sleep(0.1)
    assert link.xfer(0x50, [0x2A], 1) == (0, b"\x20")
    c = ctl.counters()
    assert c["counters"]["81"]["transactions"] >= 1 and c["freq"] == 50000


def test_fast_forward_integrates_the_skipped_time(bench):
    ctl = bench.client()
    r0 = ctl.truth()                                          # sub-panel ch2: constant 60 W
    ctl.fast_forward(ms=3600 * 1000)
    r1 = ctl.truth()
    dt = r1["t_us"] - r0["t_us"]
    assert dt >= 3600e6
    gained = r1["truth"]["sub-panel"][2][0] - r0["truth"]["sub-panel"][2][0]
    assert gained == pytest.approx(60.0 * dt / 3.6e9, rel=1e-9)   # the hour and the real time


def test_bad_control_requests_get_errors_not_crashes(bench):
    ctl = bench.client()
    for op, kw, words in (("nope", {}, "unknown op"),
                          ("set_load", {"module": "ghost", "ch": 0, "load": 1}, "no module"),
                          ("set_load", {"module": "mains", "ch": 5, "load": 1}, "channels 0..0"),
                          ("set_load", {"module": "mains", "ch": 0, "load": {"type": "x"}},
                           "unknown load type"),
                          ("module_fault", {"module": "mains", "action": "melt"}, "unknown"),
                          ("faults", {"bogus": 1}, "TypeError")):
        with pytest.raises(BenchError, match=words):
            ctl.call(op, **kw)
    raw = socket.create_connection(bench.address, timeout=5)
    raw.sendall(b"CTL\n{not json\n")
    assert b'"ok": false' in raw.makefile("rb").readline()
    assert ctl.ping() == {}                                  # still serving
