"""What one module's latched period is worth, in import µWh per channel.

  good    the module's own average x the time of its RT windows (COMMIT_CNT x 200 ms on
          its crystal, rescaled to the master clock once an hour of periods measured it)
  reboot  the RT shadow up to the boot, plus the module's own windows since the boot
  swap    the old module's shadow up to where it went quiet; the new one's own windows
Remainders below 1 µWh are kept per channel, so nothing is lost to rounding.
"""
from time import ticks_add, ticks_diff

from rbamp import RT_WINDOW_MS as W
from rbamp.energy import to_mw

from .. import log

CAL_WINDOWS = 18000   # an hour of windows before the module's clock is rescaled
CAL_PPM = 200         # the rescale is bounded: a crystal, not a broken count


class Booking:
    def __init__(self, name):
        self.name = name                   # for the log
        self.channels = 0
        self.rem = [0, 0, 0]               # latched import remainders, mW x µs
        self.cal_dt = 0                    # master ms and RT windows of good periods:
        self.cal_n = 0                     # the module's window length on the master clock
        self.count_mismatch = 0
        self.slept = False                 # sleep mode: no RT shadow, the RTC as master clock

    def restart(self):
        """Another module (a new identity): calibration and remainders start again."""
        self.cal_dt = self.cal_n = 0
        self.rem[0] = self.rem[1] = self.rem[2] = 0

    def latched(self, snap, count_only=False):
        """Import µWh per channel of a good period: average x the time of its RT windows.

        Each RT window lands in exactly one period, but a latch falls anywhere inside a
        window, so master dt and the windows' span differ by up to one window (±2 % of a
        10 s period). That error cancels only while the load stays the same, so the span is
        taken as COMMIT_CNT windows, 200 ms each on the module's crystal, rescaled to the
        master clock once an hour of periods has measured it (§7.1: one clock for all)."""
        n, dt = snap.commit_count, snap.dt_ms
        span_us = n * W * 1000
        if count_only:
            pass
        elif n <= 0 or abs(n * W - dt) > 2 * W + dt // (50 if self.slept else 200):
            self.count_mismatch += 1          # the count does not describe this period
            if not self.slept:                # (after a sleep: the RTC's error, ~1 %, or
                span_us = dt * 1000           # an anchor lost with RTC memory: the count)
        else:
            self.cal_dt += dt
            self.cal_n += n
            if self.cal_n >= CAL_WINDOWS:
                ppm = (self.cal_dt * 1000000) // (self.cal_n * W) - 1000000
                ppm = max(-CAL_PPM, min(CAL_PPM, ppm))
                span_us = span_us * (1000000 + ppm) // 1000000
        out = [0, 0, 0]
        for ch in range(self.channels):
            mw = to_mw(snap.avg_power[ch])
            if mw > 0:
                out[ch], self.rem[ch] = divmod(self.rem[ch] + mw * span_us, 3600000)
        return out

    def rebooted(self, snap, shadow):
        """The period in which the module rebooted: the shadow up to its boot, plus its own
        windows since the boot (the snapshot of this latch). The boot is placed COMMIT_CNT
        windows before the latch; the shadow after it is what was integrated since the
        blackout plus the power held through the blackout."""
        closed = shadow.take_closed()
        if self.slept:         # nobody watched: the module's own windows since its boot
            return self.latched(snap, count_only=True)
        n = snap.commit_count
        q = shadow.at_latch
        b0, b1 = q[0], q[1]
        c = shadow.c_last
        boot = ticks_add(c, -n * W)
        if n <= 0 or ticks_diff(boot, b0) < -W or ticks_diff(boot, b1) > W:
            log.debug("meter", "%s rebooted at %d ms (%d windows before %d), not where it went "
                      "quiet (%d..%d ms): RT shadow only", self.name, boot, n, c, b0, b1)
            return closed          # the boot is not where we saw the module go quiet
        own = self.latched(snap, count_only=True)
        held_ms = max(0, ticks_diff(b1, boot))
        log.debug("meter", "%s rebooted: quiet from %d to %d ms, boot at %d ms (%d windows "
                  "before %d), shadow %s, since %s, own %s", self.name, b0, b1, boot, n, c,
                  closed, q[2:5], own)
        for ch in range(self.channels):
            closed[ch] = max(0, closed[ch] - shadow.after_quiet(ch, held_ms)) + own[ch]
        return closed

    def swapped(self, snap, shadow):
        """A period in which another module took this one's place (a reboot with a new UID):
        (µWh per channel of the old module, of the new one). The old one's is the shadow up
        to where it went quiet (its last RT window read); the new one's its own windows since
        its boot. The span between is measured by nobody and is not invented."""
        closed = shadow.take_closed()
        q = shadow.at_latch
        quiet_ms = max(0, ticks_diff(q[1], q[0]))
        old = [0, 0, 0]
        for ch in range(self.channels):
            old[ch] = max(0, closed[ch] - shadow.after_quiet(ch, quiet_ms))
        return old, self.latched(snap, count_only=True)
