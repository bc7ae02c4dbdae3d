"""Where the energy of the open period goes (issue 21): the tariff in force (tariff.py), the
local day and month (tz.py), and the next instant one of them changes: the node latches the
period there (node.py), so that the energy before goes to the old bucket and the energy
after to the new one.

    cal = Calendar(clock, ledger, cfg["tariffs"], cfg["period_s"])
    cal.update()              # after each latch: the buckets by the clock now
    cal.wait_ms()             # ms to the next latch: a boundary, or the end of the period on
                              # the wall clock (periods line up with it: 15-min demand at
                              # :00 :15 :30 :45); None while the time is invalid
    cal.demand(meter, rec)    # a closed period's demand (W, first channel)

While the time is invalid, everything goes to the default tariff and the day and month
totals keep their date (a bucket without one takes the first valid date). `forced` (the
set_tariff command) puts a tariff in force instead of the windows until it is cleared.
"""
from .buckets import NO_TARIFF
from .tz import days_from_civil


class Calendar:
    def __init__(self, clock, ledger, tariffs, period_s):
        self.clock = clock
        self.ledger = ledger
        self.period_ms = period_s * 1000
        self.schedule = None
        self.next_ms = None           # the next boundary, Unix ms (None: not known)
        self.day = None
        self.forced = None            # a tariff put in force by a command (set_tariff)
        if tariffs:
            from .tariff import Schedule
            self.schedule = s = Schedule(tariffs)
            ledger.use_tariffs(s.names, s.names[s.default])
        elif any("tar" in m for m in ledger.meters.values()):
            ledger.use_tariffs([], NO_TARIFF)       # tariffs removed: their totals are kept
        ledger.use_days()

    def tariff(self):
        return self.ledger.tariff

    def update(self):
        """The buckets by the clock now (after a latch, or when the time became valid or
        moved): the tariff in force, the day and month rolled over (forwards only), the
        next boundary."""
        clock, led, s = self.clock, self.ledger, self.schedule
        if not clock.valid:
            led.tariff = self.forced or led.default
            self.next_ms = None
            return
        t = clock.now()
        z = clock.zone
        y, mo, d = z.local(t)[:3]
        self.day = days_from_civil(y, mo, d)
        led.roll(self.day, y * 12 + mo - 1)
        nxt = z.day_after(t)
        if self.forced is not None:
            led.tariff = self.forced
        elif s is not None:
            led.tariff = s.names[s.tariff(z, t)]
            c = s.next_change(z, t)
            if c is not None and c[0] < nxt:
                nxt = c[0]
        self.next_ms = nxt * 1000

    def boundary_ms(self):
        """ms to the next boundary, or None (time invalid, none known)."""
        if not self.clock.valid or self.next_ms is None:
            return None
        return max(0, self.next_ms - self.clock.now_ms())

    def wait_ms(self):
        if not self.clock.valid or self.next_ms is None:
            return None
        now = self.clock.now_ms()
        p = self.period_ms
        return max(0, min((now // p + 1) * p, self.next_ms) - now)

    def demand(self, m, rec):
        """A closed period's demand (average import power of the first channel) on the
        meter, and into the day's and month's highest when the period was a whole one."""
        dt = rec["dt_ms"]
        if dt <= 0 or not m.channels or rec["status"] in ("stale", "nolatch"):
            return
        mw = int(rec["import_wh"][0] * 3600000000 / dt) if rec["import_wh"] else 0
        m.demand_mw = mw
        if dt * 10 >= self.period_ms * 9:
            self.ledger.demand(m.key, mw)
