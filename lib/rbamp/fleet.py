"""Several modules on one bus (rbamp-protocol.md §8): one latch instant for all of them.

    fleet = Fleet(i2c).begin()            # scan, detect, prime every module
    for dev, snap in fleet.read_all():    # GC latch (or sequential), then every snapshot
        print(dev.addr, snap.avg_power if snap.valid else snap)

The General-Call frame is checked per module with GC_TICK == tick (PERIOD_VALID is a level
and cannot tell a missed broadcast from the previous latch, §8.4); modules that missed it
get their own latch. Each module keeps its own anchor, so nothing is counted twice.
"""

from ._time import sleep_ms, ticks_ms
from . import _regs as R
from .device import RbAmp
from .errors import RbAmpError, RbAmpParamError

GC_ADDR = 0x00


def broadcast_latch(i2c, group=0, tick=1):
    """The 5-byte General-Call latch frame. True if acknowledged; False means no module on
    the bus has General Call enabled (a NACK, never a silent drop, §8.3)."""
    if not 0 <= group <= 0xFF or not 0 <= tick < 0xFFFF:
        raise RbAmpParamError(22, "group 0..255 and tick 0..0xFFFE (0xFFFF means 'none')")
    try:
        i2c.writeto(GC_ADDR, bytes((0xA5, R.OP_LATCH, group, tick & 0xFF, tick >> 8)))
        return True
    except OSError:
        return False


class Fleet:
    def __init__(self, i2c, addrs=None, group=0, tries=None):
        self.i2c = i2c
        self.group = group
        self.addrs = addrs
        self.tries = tries
        self.modules = []
        self.tick = 1
        self.gc = False
        self.gc_misses = 0      # modules that had to be latched individually
        self.gc_nacks = 0       # broadcasts nobody acknowledged

    def begin(self):
        addrs = self.addrs if self.addrs is not None else self.i2c.scan()
        for a in addrs:
            if a == GC_ADDR:
                continue
            dev = RbAmp(self.i2c, a, tries=self.tries)
            try:
                dev.begin(prime=False)
            except RbAmpError:
                continue  # not an rbAmp, or not answering: the caller sees it missing
            if dev.firmware_version >= 4:
                dev.clear_event_flags(R.EV_RESET)  # from now on a set bit means a reboot
            self.modules.append(dev)
        self.gc = bool(self.modules) and all(m.gc_enabled() for m in self.modules)
        if self.gc:  # a tick no module holds, so a stale GC_TICK never passes as a witness
            self.tick = (max(m.read_gc_tick() for m in self.modules) + 1) % 0xFFFF
        stamps = self.latch_all()
        sleep_ms(R.T_LATCH)
        for m in self.modules:
            m._anchor = stamps[m]
        return self

    def _next_tick(self):
        self.tick = (self.tick + 1) % 0xFFFF  # never 0xFFFF, the 'no frame' sentinel
        return self.tick

    def latch_all(self):
        """Latch every module; returns {module: master time stamp of its latch}."""
        stamps = {}
        if self.gc:
            tick = self._next_tick()
            if not broadcast_latch(self.i2c, self.group, tick):
                self.gc_nacks += 1  # a glitched frame may still have reached some modules
            t = ticks_ms()
            sleep_ms(R.T_LATCH)
            for m in self.modules:   # the witness decides, whatever the master saw
                if self._witness(m) == tick:
                    stamps[m] = t
        for m in self.modules:
            if m not in stamps:
                if self.gc:
                    self.gc_misses += 1
                try:
                    stamps[m] = m.latch_period()
                except RbAmpError:
                    stamps[m] = None  # not latched: its period goes on, anchor kept
        return stamps

    @staticmethod
    def _witness(m, tries=3):
        """GC_TICK of m, read again on a bus error: a module that did take the broadcast
        must not be latched a second time (that latch would come back empty)."""
        for i in range(tries):
            try:
                return m.read_gc_tick()
            except RbAmpError:
                sleep_ms(2)
        return None

    def set_modules(self, modules):
        """Latch these modules from now on (modules join and leave at run time)."""
        self.modules = list(modules)
        was = self.gc
        self.gc = bool(self.modules) and all(m.gc_enabled() for m in self.modules)
        if self.gc and not was:
            self.tick = (max(m.read_gc_tick() for m in self.modules) + 1) % 0xFFFF

    def read_all(self):
        """Latch all, wait one settle, read every snapshot. Yields (module, snapshot or
        the RbAmpError of that module); one module's fault never stops the others."""
        stamps = self.latch_all()
        sleep_ms(R.T_LATCH)
        out = []
        for m in self.modules:
            try:
                if stamps[m] is None:
                    raise RbAmpError(5, "rbAmp 0x%02x: latch not acknowledged" % m.addr)
                out.append((m, m.read_period_snapshot(latched_at=stamps[m])))
            except RbAmpError as e:
                out.append((m, e))
        return out
