"""The RT shadow of one module: its RT power integrated on the node, window by window.

A window's power is booked from the time the window began (its read time minus `lag`) to
the next one's, as the power held. The shadow is cut at each latch instant (the windows
committed so far belong to the closed period) and is used only for a period the module
lost (meter.py); export, which the module's latch does not carry, comes from here always.

A blackout (no window read for longer than BLACKOUT_MS, or a restart seen in SEQ) is
remembered with the power held through it, and 'since' counts the import from its end:
what a reboot period's shadow holds after the module went quiet (booking.py). The three
are copied at each latch (`at_latch`): the period is judged by them, however late its
snapshot is read. The sampling path allocates nothing.
"""
from time import ticks_add, ticks_diff

from rbamp import RT_WINDOW_MS as W

from ..integrate import GAP_MS, Accumulators

BLACKOUT_MS = 350   # no RT block for longer than this: at least one window missed


class Shadow:
    def __init__(self, export):
        self.export = export               # signed power: negative windows are export
        self.channels = 0
        self.p = [0, 0, 0]                 # the power held: the last window's, mW
        self.acc = Accumulators(6)         # 2*ch: import shadow, 2*ch+1: export
        self.since = Accumulators(3)       # import shadow since the last blackout
        self.blackout = [0, 0]             # its start and end (booking time, ticks_ms)
        self.held = [0, 0, 0]              # power held through it, mW
        self.at_latch = [0, 0, 0, 0, 0, 0, 0, 0]   # at the last latch: blackout[2],
        #                                            since µWh[3], held mW[3]
        self.closed = [0, 0, 0]            # µWh shadow of latched periods not booked yet
        self.t_rt = 0                      # integrated up to (ticks_ms)
        self.t_read = 0                    # stamp of the window read last
        self.have_t = False                # a window was read (since detection)
        self.lag = W + 10                  # ms from a window's start to its stamp (sampler)
        self.c_last = 0                    # the last commit before the last latch
        self.gap_ms = 0                    # time with no power known (not extrapolated)

    def window(self, t, restarted):
        """A window stamped at ticks_ms t is about to replace the held power: integrate up
        to its start (or remember a blackout). The caller then writes the new power in p."""
        e = ticks_add(t, -self.lag)
        if self.have_t and (restarted or ticks_diff(t, self.t_read) > BLACKOUT_MS):
            self._blackout(e)
        else:
            self.advance(e)
        self.t_read = t
        self.have_t = True

    def _blackout(self, e):
        b = self.blackout
        b[0] = self.t_rt
        self.advance(e)
        b[1] = e
        a = self.since.a
        for i in range(len(a)):
            a[i] = 0
        for ch in range(3):
            self.held[ch] = self.p[ch]

    def advance(self, t):
        """Integrate the held power up to ticks_ms t."""
        if not self.have_t:
            self.t_rt = t
            return
        dt = ticks_diff(t, self.t_rt)
        if dt <= 0:
            return
        self.t_rt = t
        if dt > GAP_MS:
            self.gap_ms += dt     # power unknown for that long: not extrapolated
            return
        p = self.p
        acc = self.acc
        for ch in range(self.channels):
            mw = p[ch]
            if mw > 0:
                acc.add(2 * ch, mw, dt)
                self.since.add(ch, mw, dt)
            elif mw < 0 and self.export:
                acc.add(2 * ch + 1, -mw, dt)

    def settle(self):
        """Integrate up to the end of the last window read, not beyond: the window in
        progress is booked with its own power once it is read (extrapolating the held power
        into it misbooks a load change by up to a window)."""
        if self.have_t:
            self.advance(ticks_add(self.t_read, W - self.lag))

    def last_commit(self, t):
        """Estimated master time of the module's last RT commit before ticks_ms t: a latch
        closes the windows committed so far, the one in progress goes to the next period."""
        if not self.have_t:
            return t
        c = ticks_add(self.t_read, W - self.lag)
        late = ticks_diff(t, c)
        return ticks_add(c, late - late % W) if late >= 0 else t

    def close_segment(self, t):
        """At a latch instant: the shadow up to the last commit belongs to the closed
        period; the blackout state as it is now judges that period."""
        self.c_last = self.last_commit(t)
        self.advance(self.c_last)
        for ch in range(self.channels):
            self.closed[ch] += self.acc.take_uwh(2 * ch)
        q = self.at_latch
        q[0], q[1] = self.blackout
        for ch in range(3):
            q[2 + ch] = self.since.peek_uwh(ch)
            q[5 + ch] = self.held[ch]

    def after_quiet(self, ch, held_ms):
        """Shadow µWh integrated from the blackout to the latch, plus the power held through
        held_ms of it: what the shadow of a period holds after the module went quiet."""
        q = self.at_latch
        return q[2 + ch] + max(0, q[5 + ch]) * held_ms // 3600

    def take_closed(self):
        """The shadow import of the closed period(s), µWh per channel; cleared."""
        out = self.closed[:]
        self.closed[0] = self.closed[1] = self.closed[2] = 0
        return out

    def take_export(self, ch):
        return self.acc.take_uwh(2 * ch + 1)

    def peek_export(self, ch):
        return self.acc.peek_uwh(2 * ch + 1)

    def provisional(self, ch):
        """Shadow import not yet confirmed by a latch (saved with the ledger, see ledger.py)."""
        return self.closed[ch] + self.acc.peek_uwh(2 * ch)

    def take_unbooked(self, ch):
        """(import µWh, export µWh) of channel ch not booked yet (the shadow of closed and
        open periods, export); cleared. For a module that left the bus."""
        imp = self.closed[ch] + self.acc.take_uwh(2 * ch)
        self.closed[ch] = 0
        return imp, (self.take_export(ch) if self.export else 0)
