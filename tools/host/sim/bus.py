"""An I²C bus hosting virtual rbAmp modules: transactions, General Call, fault injection,
counters, a bus-time model and DRDY lines (rbamp-protocol.md §2, §6.3, §8).

`transfer()` is one I²C transaction (S addr [wdata] [Sr addr rlen-bytes] P) and returns
(status, data). Runs under CPython and MicroPython, in-process or inside the simulator.
"""
from . import commands

OK = 0
NACK_ADDR = 1  # nobody acknowledged the address byte (absent, busy, GC disabled)
NACK_DATA = 2  # transfer failed after the address phase (injected, advisory reset)
HANG = 3       # the bus wedged (bus-busy spin, §2.8): the host layer decides how long

GHOST_SIGNATURE = b"\x3c\x2f\xfb\x3f"  # 1.962 as f32, the "1.96 V" ghost of §2.8


class Faults:
    """Fault injection on the bus. `nack`: probability that a transaction fails (~0.2 is
    an ESP32 at 100 kHz); `ghost`: what a failed read leaves in the host buffer ('keep':
    untouched, 'signature': the 1.962 pattern, 'last': bytes of the last good read);
    `emi`: (t_from_us, t_to_us, probability) relay-commutation window; `hang`: probability
    of a wedged transaction."""

    def __init__(self, nack=0.0, ghost="keep", emi=None, hang=0.0, seed=12345):
        self.nack = nack
        self.ghost = ghost
        self.emi = emi
        self.hang = hang
        self.seed = seed or 1

    def rand(self):
        x = self.seed
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.seed = x
        return x / 4294967296.0

    def fails(self, t):
        p = self.nack
        if self.emi and self.emi[0] <= t < self.emi[1]:
            p = self.emi[2]
        return p > 0 and self.rand() < p


class Counters:
    __slots__ = ("transactions", "bytes", "nacks", "bus_us")

    def __init__(self):
        self.transactions = self.bytes = self.nacks = 0
        self.bus_us = 0.0

    def as_dict(self):
        return {"transactions": self.transactions, "bytes": self.bytes, "nacks": self.nacks,
                "bus_us": round(self.bus_us, 1)}


class VirtualBus:
    def __init__(self, clock, freq=50000, faults=None):
        self.clock = clock
        self.freq = freq
        self.faults = faults or Faults()
        self.modules = []
        self.drdy = {}      # module -> pin number of its DRDY line
        self.lines = {}     # pin -> [held, last_pulse_t]
        self.edges = []     # (pin, t_us) falling edges not yet collected
        self.counters = {}  # address -> Counters
        self.last_good = b""
        self.gc_tick_seen = None

    # ---- topology -----------------------------------------------------------------------
    def add(self, module, drdy_pin=None, t=None):
        t = self.clock.now_us() if t is None else t
        self.advance(t)
        self.modules.append(module)
        if drdy_pin is not None:
            self.drdy[module] = drdy_pin
            self.lines.setdefault(drdy_pin, [False, -1])
        module.power_on(t)
        return module

    def unplug(self, module):
        t = self.clock.now_us()
        self.advance(t)
        module.power_off(t)
        module.plugged = False

    def replug(self, module):
        t = self.clock.now_us()
        self.advance(t)
        module.plugged = True
        module.power_on(t)

    def power_cycle(self, module, off_us=0):
        """Brown-out / power loss of one module: off now, back on after off_us."""
        t = self.clock.now_us()
        self.advance(t)
        module.power_off(t)
        module.power_on(t + off_us)

    def find(self, addr):
        return [m for m in self.modules if m.plugged and m.powered and m.active_address() == addr]

    def counter(self, addr):
        c = self.counters.get(addr)
        if c is None:
            c = self.counters[addr] = Counters()
        return c

    # ---- time and DRDY ------------------------------------------------------------------
    def next_event(self):
        best = None
        for m in self.modules:
            e = m.next_event()
            if e is not None and (best is None or e < best):
                best = e
        return best

    def advance(self, t):
        """Run all modules to t in global time order, so wired-OR edges interleave."""
        while True:
            nxt, first = None, None
            for m in self.modules:
                e = m.next_event()
                if e is not None and e <= t and (nxt is None or e < nxt):
                    nxt, first = e, m
            if first is None:
                break
            first.advance(nxt)
            self._lines(nxt)
        for m in self.modules:
            m.advance(t)
        self._lines(t)

    def _lines(self, t):
        """Turn pulses and alarm holds into falling edges per line (§6.3)."""
        if not self.lines:
            for m in self.modules:
                m.pulses.clear()
            return
        held_now = {}
        for m in self.modules:
            pin = self.drdy.get(m)
            if pin is not None and m.powered and m.event_mask and (m.events & m.event_mask):
                held_now[pin] = True
        for pin, st in self.lines.items():
            h = held_now.get(pin, False)
            if h and not st[0]:
                self.edges.append((pin, t))
            st[0] = h
        for m in self.modules:
            pin = self.drdy.get(m)
            if pin is None:
                m.pulses.clear()
                continue
            st = self.lines[pin]
            for tp in m.pulses:
                if not st[0] and tp - st[1] > 10:  # pulses < 10 µs apart merge into one
                    self.edges.append((pin, tp))
                st[1] = tp
            m.pulses.clear()

    def line_level(self, pin):
        st = self.lines.get(pin)
        return 0 if st and st[0] else 1

    def take_edges(self):
        e = self.edges
        self.edges = []
        e.sort(key=lambda x: x[1])
        return e

    # ---- transactions -------------------------------------------------------------------
    def wire_us(self, wlen, rlen):
        bits = 2 + 9 * (1 + wlen) + (10 + 9 * rlen if rlen and wlen else 9 * rlen)
        return bits * 1e6 / self.freq

    def transfer(self, addr, wdata=b"", rlen=0):
        t = self.clock.now_us()
        self.advance(t)
        c = self.counter(addr)
        c.transactions += 1
        c.bus_us += self.wire_us(len(wdata), rlen)
        status, data = self._transfer(addr, wdata, rlen, t)
        if status == OK:
            c.bytes += len(wdata) + rlen
            if rlen:
                self.last_good = data
        else:
            c.nacks += 1
        self._lines(t)
        return status, data

    def _ghost(self, rlen):
        g = self.faults.ghost
        if g == "signature":
            src = GHOST_SIGNATURE
        elif g == "last" and self.last_good:
            src = self.last_good
        else:
            return None
        return bytes(src[i % len(src)] for i in range(rlen))

    def _transfer(self, addr, wdata, rlen, t):
        if addr == 0x00:
            return self._general_call(wdata, rlen, t)
        targets = [m for m in self.find(addr) if not m.busy(t)]
        if not targets:
            return NACK_ADDR, None
        if self.faults.hang and self.faults.rand() < self.faults.hang:
            return HANG, None
        if self.faults.fails(t):
            return NACK_DATA, self._ghost(rlen) if rlen else None
        if not rlen:
            status = OK
            for m in targets:
                m.write(wdata, t)
                if m.reset_nack_pending:  # the reset fired inside the transfer (§2.7)
                    m.reset_nack_pending = False
                    status = NACK_DATA
            return status, None
        for m in targets:
            if wdata:
                m.write(wdata[:1], t)
        t_data = t + int(self.wire_us(len(wdata), 0))
        byte_us = int(9e6 / self.freq)
        data = None
        for m in targets:  # open-drain: colliding modules AND their bits
            d = m.read(rlen, t_data, byte_us)
            if data is None:
                data = d
            else:
                for i in range(rlen):
                    data[i] &= d[i]
        return OK, bytes(data)

    def _general_call(self, wdata, rlen, t):
        """General-Call frame (§8.2): ACKed only if some module enabled GC at its boot."""
        listeners = [m for m in self.modules if m.plugged and m.powered and
                     m.gc_enabled_boot and not m.busy(t)]
        if not listeners or rlen:
            return NACK_ADDR, None
        failed = self.faults.fails(t)
        for m in listeners:
            # a glitched frame reaches some modules and not others
            if failed and self.faults.rand() < 0.5:
                continue
            commands.gc_frame(m, wdata, t)
        return (NACK_DATA if failed else OK), None
