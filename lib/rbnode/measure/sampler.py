"""RT sampling: DRDY falling edge -> ThreadSafeFlag -> one task reads the ready modules.

  - one wired-OR pin (config `drdy_pin`): an edge does not say whose it is. The task waits
    WIRED_OR_MS (edges of modules in phase come 1-5 ms apart) and asks every module for its
    SEQ (digest header, 2 bytes, v1.3): only a module with a new window is read, and it is
    timed by its own edge: the one the previous window's edge + 200 ms x new windows
    predicts, from a ring of recent edges. Older firmware has no SEQ: every edge reads
    every module, timed by the newest edge;
  - a pin per module (`modules[].drdy_pin`): only the module(s) whose line fell are read;
  - no pin: every module is polled at the RT rate (200 ms).
A module whose read failed is tried once more RETRY_MS later, inside the same 200 ms window.
SEQ also shows a restart that leaves no gap in the edges (seq.py: the sampler keeps one Seq
per module). The per-sample path (SEQ, read, integrate, step detection) allocates nothing.

A DRDY edge marks the end of the module's window (§6: commit, then the pulse), so its time is
taken in the IRQ handler and the window is booked from there: however late the task gets to
the read (the event loop busy with a TLS handshake, a flash write, a reconnect), the power
is integrated over the window it belongs to. Polled modules are booked from the read time.
"""
import asyncio
from time import ticks_add, ticks_diff, ticks_ms

from rbamp import RT_WINDOW_MS as W

from .seq import Seq

WIRED_OR_MS = 10
RETRY_MS = 15
POLL_MS = W           # no DRDY line: polled at the RT rate
RING = 16          # recent edges on the shared line (a power of two)
EDGE_MS = 60       # an edge this close to a module's predicted one is its own
LATE_MS = 170      # an edge may be stamped this late (IRQ held off) when SEQ is checked


class Sampler:
    def __init__(self, meters, board, shared_pin=None):
        self.meters = meters
        self.seqs = [Seq(m) for m in meters]     # which of a module's windows are new
        self.flag = asyncio.ThreadSafeFlag()
        self.ready = bytearray(len(meters))     # set by the IRQ handlers
        self.edges = 0
        self.t_edge = [0] * len(meters)          # ticks_ms of each module's last edge (IRQ)
        self.late_max = 0                        # ms from an edge to its read, worst so far
        self.loops = 0                           # sampling rounds (watchdog liveness)
        self.ring = [0] * RING                   # shared-line edges, newest at ri - 1
        self.ri = 0
        self.pins = []
        self.polling = True
        self.on_line = bytearray(len(meters))    # modules on the shared line
        if shared_pin is not None:
            self.pins.append(board.drdy_pin(shared_pin, self._irq_all))
            self.polling = False
        for i, m in enumerate(meters):
            n = m.spec["drdy_pin"]
            if n is not None and n != shared_pin:
                self.pins.append(board.drdy_pin(n, self._irq_one(i)))
                self.polling = False
            elif shared_pin is not None:
                self.on_line[i] = 1
        # modules without any DRDY line are read with the others (on any edge) or polled
        self.unwired = bytearray(1 if shared_pin is None and m.spec["drdy_pin"] is None else 0
                                 for m in meters)
        self.shared = shared_pin is not None
        # sample times: the edge (the window's end) for wired modules, the read otherwise
        self.timed = bytearray(0 if self.polling or u else 1 for u in self.unwired)
        for m, timed in zip(meters, self.timed):   # from a window's start to that time
            m.shadow.lag = W if timed else W + POLL_MS // 2

    def _irq_all(self, pin):
        t = ticks_ms()
        k = self.ri
        self.ring[k] = t
        self.ri = (k + 1) & (RING - 1)
        r = self.ready
        e = self.t_edge
        on = self.on_line
        for i in range(len(r)):
            if on[i]:
                r[i] = 1
                e[i] = t
        self.flag.set()

    def _own_edge(self, i, sh, k):
        """Shared line: the edge of module i's newest window, k windows after the one it
        read last (sh: its shadow); the newest edge when there is no prediction (first
        read, restart)."""
        t = self.t_edge[i]
        sq = self.seqs[i]
        if not sq.use_seq or not sh.have_t or sq.restarted:
            return t
        want = ticks_add(sh.t_read, W * k)
        err = EDGE_MS
        for e in self.ring:
            d = abs(ticks_diff(e, want))
            if d < err:
                t, err = e, d
        if err == EDGE_MS and ticks_diff(t, sh.t_read) <= 0:
            t = want                     # its edge was missed: the prediction is better
        return t

    def _irq_one(self, i):
        def handler(pin):
            self.t_edge[i] = ticks_ms()
            self.ready[i] = 1
            self.flag.set()
        return handler

    def _round(self, everyone):
        """Read every module flagged in `ready` (all of them if everyone); returns the
        number that failed, which stay flagged for a retry."""
        failed = 0
        r = self.ready
        meters = self.meters
        for i in range(len(meters)):
            if everyone or r[i]:
                r[i] = 0
                m = meters[i]
                if m.dev is None:
                    continue
                timed = self.timed[i]
                sq = self.seqs[i]
                k = sq.fresh(LATE_MS if timed else LATE_MS + POLL_MS)
                if k == 0:
                    continue                 # no new window
                if k > 0 and m.read(sq.use_seq):
                    sq.read()
                    if not timed:
                        m.sample(ticks_ms(), sq.take_restart())
                        continue
                    # after the read: an edge during it is newer
                    sh = m.shadow
                    t = self._own_edge(i, sh, k) if self.on_line[i] else self.t_edge[i]
                    late = ticks_diff(ticks_ms(), t)
                    if late > self.late_max:
                        self.late_max = late
                    if sq.use_seq or not sh.have_t or t != sh.t_read:   # a new window
                        m.sample(t, sq.take_restart())
                else:
                    r[i] = 1
                    failed += 1
        return failed

    def read_slow(self):
        """The slow values (frequency, reactive power) of every module: a few register
        reads beside the RT blocks, on the node's side of the seam (the node's supervisor
        calls it every mqtt.state_s)."""
        for m in self.meters:
            if m.dev is not None and m.state == "ok":
                m.read_slow()

    async def run(self):
        if self.polling:
            due = ticks_ms()
            while True:
                self.loops += 1
                if self._round(True):
                    await asyncio.sleep_ms(RETRY_MS)
                    self._round(False)
                due = ticks_add(due, POLL_MS)      # keep 5 Hz on average, whatever a round took
                wait = ticks_diff(due, ticks_ms())
                if wait < 0:
                    due, wait = ticks_ms(), 0
                await asyncio.sleep_ms(wait)
        while True:
            await self.flag.wait()
            self.edges += 1
            self.loops += 1
            if self.shared:
                await asyncio.sleep_ms(WIRED_OR_MS)
            u = self.unwired
            for i in range(len(u)):
                if u[i]:
                    self.ready[i] = 1
            if self._round(False):
                await asyncio.sleep_ms(RETRY_MS)
                self._round(False)
