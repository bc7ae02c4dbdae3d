"""Period metering: latch every energy meter each period_s, read the snapshots, book the
energy in the ledger.

One latch instant for all (General Call) when every module has it enabled and none is
missing, sequential latches otherwise (rbamp.Fleet). Per module and period the outcome is:
  ok      the module's period average x the span of its RT windows is booked (see
          Booking.latched); the RT shadow is dropped
  stale   empty latch: nothing booked, the period goes on (the next latch covers it)
  reboot  the module restarted and lost part of its period: the RT shadow up to the boot
          plus the module's own windows since the boot (Booking.rebooted)
  lost    the snapshot could not be read three times: the RT shadow is booked instead
  primer  first latch of a (re)joined module: only the RT shadow since it joined counts
  nolatch the latch itself was not acknowledged: the period goes on
  swapped a reboot with another UID (a hot swap): the old module's part (the shadow up to
          where it went quiet, and the period's export) to its UID, then a `reboot` record
          of the new module's own windows since its boot to the new UID
"""
import asyncio
from time import ticks_ms

from rbamp import LATCH_MS, Fleet, RbAmpError, RbAmpIOError, RbAmpStaleError

from .. import log

READ_TRIES = 3
READ_GAP_MS = 20


class Metering:
    def __init__(self, i2c, meters, ledger, epoch):
        self.meters = meters
        self.ledger = ledger
        self.epoch = epoch
        self.fleet = Fleet(i2c)
        self.absent = []          # configured modules not measuring (no General Call then)
        self.cycles = 0
        self.last_cycle = ticks_ms()
        self.outcomes = {"ok": 0, "stale": 0, "reboot": 0, "lost": 0, "primer": 0, "nolatch": 0,
                         "swapped": 0}

    def members(self):
        return [m for m in self.meters if m.state == "ok" and m.has_energy]

    def _sync_fleet(self, ms):
        devs = [m.dev for m in ms]
        # a General-Call frame latches every module that has it enabled, also one the node
        # cannot read now (missing after a bus error): its period would close unread and be
        # lost. While a configured module is missing, the latches are sequential.
        absent = [m.id for m in self.meters if m.state != "ok"]
        if devs != self.fleet.modules or absent != self.absent:
            self.absent = absent
            try:
                self.fleet.set_modules(devs)
            except RbAmpError as e:   # the General-Call check itself failed: sequential
                self.fleet.modules, self.fleet.gc = devs, False
                log.warning("metering", "General Call check failed (%s): sequential latches", e)
            if absent:
                self.fleet.gc = False
            log.info("metering", "%d meter(s), %s%s", len(devs),
                     "General Call latch" if self.fleet.gc else "sequential latches",
                     " (%s missing)" % ", ".join(absent) if absent else "")

    async def cycle(self):
        """One period close for every member. Returns the period records."""
        ms = self.members()
        self._sync_fleet(ms)
        if not ms:
            return []
        stamps = self.fleet.latch_all()
        for m in ms:
            if stamps[m.dev] is not None:
                m.shadow.close_segment(stamps[m.dev])
        await asyncio.sleep_ms(LATCH_MS)
        self.cycles += 1
        self.last_cycle = ticks_ms()
        out = []
        for m in ms:
            t = stamps[m.dev]
            status, snap = "nolatch", None
            if t is not None:
                status, snap = await self._read(m, t)
            self.outcomes[status] += 1
            uid = self._new_identity(m) if status == "reboot" else None
            if uid is not None:
                out.extend(self._book_swap(m, uid, snap))
            else:
                out.append(self._book(m, status, snap))
        return out

    @staticmethod
    def _new_identity(m):
        """The UID of the module that answers after a reboot when it is another one."""
        if not m.uid:
            return None
        try:
            uid = m.dev.read_uid().hex()
        except RbAmpError:
            return None               # cannot tell now: Node._check_swaps asks again
        return uid if uid != m.uid else None

    def _book_swap(self, m, uid, snap):
        """The period spanning a hot swap: the old module's part to its UID, the new one's
        own windows since its boot to the new UID (booking follows identity)."""
        log.warning("metering", "%s: a different module (uid %s) now answers at 0x%02x: its "
                    "energy goes to new totals, uid %s keeps what it measured", m.id, uid,
                    m.addr, m.uid)
        old, new = m.booking.swapped(snap, m.shadow)
        recs = [self._book(m, "swapped", snap, old)]
        m.replaced(uid)
        self.ledger.meter(uid, m.id, m.addr, m.channels)
        recs.append(self._book(m, "reboot", snap, new, export=False))
        return recs

    async def _read(self, m, t):
        dev = m.dev
        for attempt in range(READ_TRIES):
            try:
                snap = dev.read_period_snapshot(latched_at=t)
            except RbAmpStaleError:
                log.info("metering", "%s: empty latch, the period goes on", m.id)
                return "stale", None
            except RbAmpIOError as e:
                if not dev.period_pending:
                    log.warning("metering", "%s: period snapshot unreadable (%s): booked from "
                                "RT power", m.id, e)
                    return "lost", None
                await asyncio.sleep_ms(READ_GAP_MS)
                continue
            if snap.gap:
                log.warning("metering", "%s: module rebooted: its period is booked from RT power",
                            m.id)
                return "reboot", snap
            return ("primer" if snap.primer else "ok"), snap
        return "lost", None   # not reached: the driver gives up after READ_TRIES failures

    def _book(self, m, status, snap, imports=None, export=True):
        led = self.ledger
        rec = {"module": m.id, "key": m.key, "t": self.epoch(), "status": status,
               "dt_ms": snap.dt_ms if snap is not None else 0, "import_wh": [], "export_wh": [],
               "avg_w": []}
        if imports is not None:              # already split (a swap)
            pass
        elif status == "ok":
            m.shadow.take_closed()           # the module delivered: the shadow is not needed
            imports = m.booking.latched(snap)
        elif status == "reboot":
            imports = m.booking.rebooted(snap, m.shadow)
        elif status in ("primer", "lost"):
            imports = m.shadow.take_closed()
        else:                                # stale, nolatch: the period goes on
            imports = [0, 0, 0]
        for ch in range(m.channels):
            imp = imports[ch]
            exp = m.shadow.take_export(ch) if m.export and export else 0
            led.add(m.key, ch, imp, exp)
            rec["import_wh"].append(imp / 1e6)
            rec["export_wh"].append(exp / 1e6)
            rec["avg_w"].append(snap.avg_power[ch] if status == "ok" else None)
        self.outcomes["swapped"] += status == "swapped"
        if status == "ok":
            m.max_p = snap.max_power          # the largest RT window power of ch0 (§3)
            rec["max_p_w"] = snap.max_power
        return rec

    def provisional(self):
        """{key: [[import µWh, export µWh] per channel]} measured and in no ledger total yet:
        the open periods' shadow import and the export integrated since the last latch.
        It only reads (a save and a publication add it to the totals; the period books it)."""
        out = {}
        for m in self.members():
            sh = m.shadow
            sh.settle()
            out[m.key] = [[sh.provisional(ch), sh.peek_export(ch) if m.export else 0]
                          for ch in range(m.channels)]
        return out
