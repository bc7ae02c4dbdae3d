"""Sleep mode (config `mode: "sleep"`): a battery logger. The node wakes every period_s,
closes the period the modules measured while it slept, books it, and sleeps again; the
modules (mains powered) never stop measuring.

  cold boot (power-on, or no usable state): detect the modules, primer latch each (its RTC
      time is the anchor), keep the state, sleep;
  wake (or any reset with the state intact): no primer. One latch closes the period that
      spanned the sleep. Its energy is the module's average x the span of its own RT windows
      (COMMIT_CNT x 200 ms on the module's crystal), so every Wh of the sleep counts whatever
      the loads did; the real elapsed time since the last good latch, on the RTC (never the
      configured sleep time), is the check (a disagreement beyond 2 % is counted in
      `count_mismatch`);
  stale latch: nothing booked, the anchor stays (the next latch covers both periods);
  module rebooted while the node slept (EVENT_FLAGS.RESET, kept set on a wake): the energy
      before its boot was measured by nobody and is not invented; its own windows since the
      boot are booked.

State: energy totals and anchors in RTC memory (rtcstate.py: magic, version, CRC) on every
wake; the flash ledger every save_s. RTC memory that is garbage (a brown-out) is rejected and
the flash ledger used: the periods booked since its last save are lost (with MQTT the
published totals stay at the broker's until the ledger passes them: never a dip, publisher.py),
never counted twice, and the period open in the module is booked from its window count. Boards without RTC memory
(RP2040, whose deep sleep also stops its clock) write the flash ledger on every wake: choose
period_s with the flash in mind (README, sleep mode); their wakes are told from resets by
board.reset_cause() (a mark in the watchdog scratch words).

Tariffs and days (calendar.py): the period that spanned the sleep goes to the tariff in force
when it began (kept in the state); the buckets then follow the clock. The next wake is due
period_s after this one, or at the next boundary (a tariff change, local midnight) if that
comes first: then the node wakes early by its lead (what its last boundary wake took from
the timer to the latch, and half of that again; LEAD_MS at least) and waits, so its latch
falls on the boundary; a latch that is late all the same is logged with what the wake took.
The wall clock is the RTC, trusted across the sleep once a sync (or, without servers, the
RTC itself) made it valid; NTP is asked on a wake with the network when the time is invalid
or time.resync_h has passed since the last sync. (Continuous mode lines its periods up with
the wall clock; sleep mode keeps period_s from each wake, so an early wake does not bring
the next one forward.)

Page 0 has import averages only: a `bidirectional` module's export needs the RT stream of
continuous mode and is not measured while the node sleeps.
"""
import asyncio
from time import ticks_diff, ticks_ms

from .. import log
from ..buckets import merge
from .rtcstate import StateError, pack, unpack

MIN_SLEEP_MS = 1000
LEAD_MS = 1500          # a wake for a boundary comes at least this early and waits for it
LEAD_MAX_MS = 10000
LATE_MS = 200           # a boundary latch later than this (one RT window) is reported


class Sleeper:
    def __init__(self, node):
        self.node = node
        self.board = node.board
        self.cfg = node.cfg
        self.t0 = ticks_ms()
        self.anchors = {}       # key -> RTC ms of the last good latch
        self.wakes = 0
        self.flash_ms = 0       # RTC ms of the last flash ledger save
        self.has_memory = False  # the board has RTC memory
        self.restored = False   # the state came from RTC memory
        self.unchecked = True   # totals not yet compared with the broker's retained ones
        self.members = None     # the modules metered (after the first cycle)
        self.cause = None
        self.due = None         # RTC ms of the boundary the next latch is due at, or None
        self.lead = LEAD_MS     # how early a wake for a boundary comes
        self.synced = None      # RTC ms of the last NTP sync

    def _load_state(self):
        data = self.board.rtc_memory()
        self.has_memory = data is not None
        if data is None:
            return None
        try:
            return unpack(data)
        except StateError as e:
            if data:
                log.warning("sleep", "%s: using the flash ledger", e)
            return None

    def _restore(self, doc):
        """Totals from RTC memory, where they are newer than the flash ledger's. A state
        older than the flash ledger or than the last wake (replayed, or a clock that went
        back) is used all the same (the max per total), but the totals are compared with
        the broker's again before they are published (never below what it holds)."""
        led = self.node.ledger
        age = self.board.rtc_ms() - (doc.get("t") or 0)
        stale = doc["seq"] < led.seq or not 0 <= age <= self.cfg["period_s"] * 1500 + 60000
        if stale:
            log.warning("sleep", "the sleep state is older than expected (save #%d, flash #%d, "
                        "%d s old): totals checked with the broker", doc["seq"], led.seq,
                        age // 1000)
        for key, m in doc["meters"].items():
            mine = led.meters.get(key)
            if mine is None:
                led.meters[key] = m
                continue
            merge(mine, m, led.default)   # each total the larger (buckets.merge)
        led.seq = max(led.seq, doc["seq"])
        self.anchors = dict(doc["anchors"])
        self.wakes = doc["wakes"]
        self.flash_ms = doc.get("flash_ms") or 0
        self.unchecked = bool(doc.get("unchecked")) or stale
        # the tariff of the period that spanned the sleep; the clock valid as the RTC kept it
        t = doc.get("tariff")
        led.tariff = t if t in (led.tariffs or ()) else led.default
        if doc.get("clock") in ("ntp", "board"):
            self.node.clock.trust(doc["clock"])
        for k in ("synced", "due"):
            v = doc.get(k)
            setattr(self, k, v if isinstance(v, int) else None)
        v = doc.get("lead")
        self.lead = v if isinstance(v, int) and LEAD_MS <= v <= LEAD_MAX_MS else LEAD_MS

    async def cycle(self):
        """One energy cycle: the first call of a boot also restores the state and (cold boot)
        primes; later calls (the node kept awake) latch again. The records go to the hub."""
        node, board = self.node, self.board
        if self.members is None:          # the wake itself (t0: the Sleeper was made)
            fresh = self._boot()
        else:                             # kept awake: the next period
            self.t0 = ticks_ms()
            fresh = []
        self.wakes += 1
        for m in fresh:                   # cold boot: a primer latch is the anchor
            try:
                m.dev.prime()
                self.anchors[m.key] = board.rtc_ms()
                log.info("sleep", "%s: primer latch, anchor set", m.id)
            except OSError as e:
                log.warning("sleep", "%s: primer latch failed (%s): next wake", m.id, e)
        if len(fresh) < len(self.members):
            if self.due is not None:          # woken for a boundary: the latch on it
                await self._boundary(board.rtc_ms())
            for rec in await node.metering.cycle():
                rec["wake"] = self.wakes
                node.record(rec)
                if rec["status"] in ("ok", "reboot", "lost", "primer"):
                    self.anchors[rec["key"]] = board.rtc_ms()
        self.next_due()
        self.keep()
        log.info("sleep", "wake #%d (%s) energy step done in %d ms", self.wakes, self.cause,
                 ticks_diff(ticks_ms(), self.t0))

    def _boot(self):
        """State from RTC memory, the modules, the period each module kept open while the
        node slept. Returns the modules that need a primer latch (no anchor)."""
        node, board = self.node, self.board
        self.cause = board.reset_cause()
        woke = self.cause == "deepsleep"
        doc = self._load_state()
        self.restored = doc is not None
        node.start(keep_reset=woke or doc is not None)
        if doc is not None:
            self._restore(doc)
        else:                             # the period now open: the buckets by the clock
            node.calendar.update()
        now = board.rtc_ms()
        fresh = []
        self.members = node.metering.members()
        for m in self.members:
            m.booking.slept = True
            if m.export:
                log.warning("sleep", "%s: export is not measured in sleep mode (no RT stream)",
                            m.id)
            a = self.anchors.get(m.key)
            if a is not None and 0 <= now - a < 86400000 * 30:
                m.dev.resume(now - a)
            elif woke:                    # the anchor went with RTC memory: the count decides
                m.dev.resume(0)
            else:
                fresh.append(m)
        return fresh

    async def _boundary(self, now):
        """Wait for the boundary this wake is for; the next lead from what this wake took
        (the timer was set `lead` before the boundary)."""
        took = now - (self.due - self.lead)
        early = self.due - now
        if 0 < early <= 2 * LEAD_MAX_MS:
            await asyncio.sleep_ms(early)
        elif -early > LATE_MS and -early < 2 * LEAD_MAX_MS:
            log.warning("sleep", "boundary latch %d ms late: the wake took %d ms, the lead was "
                        "%d ms", -early, took, self.lead)
        if 0 < took < 2 * LEAD_MAX_MS:
            self.lead = min(LEAD_MAX_MS, max(LEAD_MS, took + max(500, took // 2)))

    def next_due(self):
        """The buckets for the period now open (calendar.py), and whether a boundary comes
        before the period ends (period_s from the start of this cycle): then the next wake
        is due at it."""
        cal = self.node.calendar
        cal.update()
        left = self.cfg["period_s"] * 1000 - ticks_diff(ticks_ms(), self.t0)
        b = cal.boundary_ms()
        if b is None or b > left:
            self.due = None
        else:
            self.due = self.board.rtc_ms() + b

    def sync_due(self):
        """NTP on this wake: the time is invalid, or resync_h passed since the last sync."""
        clock = self.node.clock
        return bool(clock.servers) and (not clock.valid or self.synced is None or
                                        self.board.rtc_ms() - self.synced >= clock.resync_ms)

    def sleep_ms(self):
        """Until the next period closes, counted from the start of the last cycle, or the
        lead before a boundary that comes first."""
        if self.due is not None:
            ms = self.due - self.board.rtc_ms() - self.lead
        else:
            ms = self.cfg["period_s"] * 1000 - ticks_diff(ticks_ms(), self.t0)
        return max(MIN_SLEEP_MS, ms)

    def save(self):
        """Everything kept now (before an update's reset): the flash ledger, then RTC memory
        with its sequence number. True when the flash ledger was written."""
        return self.keep(flash=True)

    def keep(self, flash=False):
        """RTC memory every wake; the flash ledger every save_s (every wake without RTC
        memory, or when the state does not fit), or now with flash. The flash first, so the
        state records the ledger's sequence number as it is on flash. Returns whether the
        flash ledger was written."""
        node, board = self.node, self.board
        now = board.rtc_ms()
        flash_due = (flash or now - self.flash_ms >= self.cfg["save_s"] * 1000 or
                     self.flash_ms > now or not self.has_memory)
        saved = flash_due and node.save()
        if saved:
            self.flash_ms = now
        try:
            data = pack(node.ledger, self.anchors, self.wakes, self.flash_ms, self.unchecked, now,
                        {"tariff": node.ledger.tariff, "clock": node.clock.state(),
                         "synced": self.synced, "due": self.due,
                         "lead": self.lead})
        except StateError as e:
            log.error("sleep", "%s: the flash ledger is written every wake", e)
            if not flash_due and node.save():
                self.flash_ms = now
                saved = True
            return saved
        if self.has_memory:
            board.rtc_memory(data)
        return saved
