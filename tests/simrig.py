"""A deterministic bench rig for the model tests: ManualClock + VirtualBus + helpers."""
import struct

from tools.host.sim import build
from tools.host.sim.bus import OK

MS = 1000


class Rig:
    def __init__(self, modules=None, faults=None, freq=50000, settle=True):
        self.clock = clock = __import__("tools.host.sim.clock", fromlist=["x"]).ManualClock()
        sc = {"modules": modules or [{"variant": "UI1", "address": 0x50}], "freq": freq}
        if faults:
            sc["faults"] = faults
        self.bus = build(sc, clock)
        self.m = self.bus.modules[0]
        if settle:
            self.wait(300 * MS)

    def wait(self, us):
        self.clock.advance(us)
        self.bus.advance(self.clock.now_us())

    def xfer(self, addr, w=b"", n=0):
        return self.bus.transfer(addr, bytes(w), n)

    def rd(self, reg, n=1, addr=0x50):
        st, d = self.xfer(addr, [reg], n)
        assert st == OK, "read 0x%02x at 0x%02x: status %d" % (reg, addr, st)
        return d

    def u8(self, reg, addr=0x50):
        return self.rd(reg, 1, addr)[0]

    def f32(self, reg, addr=0x50):
        return struct.unpack("<f", self.rd(reg, 4, addr))[0]

    def f32_bytes(self, reg, addr=0x50):
        """A float assembled from four single-byte transactions (legacy firmware)."""
        return struct.unpack("<f", bytes(self.u8(reg + k, addr) for k in range(4)))[0]

    def u16(self, reg, addr=0x50):
        return struct.unpack("<H", self.rd(reg, 2, addr))[0]

    def u32(self, reg, addr=0x50):
        return struct.unpack("<I", self.rd(reg, 4, addr))[0]

    def wr(self, reg, val, addr=0x50):
        return self.xfer(addr, [reg, val])[0]

    def cmd(self, op, addr=0x50):
        return self.wr(0x01, op, addr)

    def err(self, addr=0x50):
        return self.u8(0x02, addr)

    def rt(self, addr=0x50):
        return struct.unpack("<14f", self.rd(0x86, 56, addr))

    def latch(self, addr=0x50):
        assert self.cmd(0x27, addr) == OK
        self.wait(50 * MS)
        return self.u8(0x07, addr)
