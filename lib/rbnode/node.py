"""The always-on node: meters, sampling, period metering and the ledger, wired together.

    node = Node(cfg, Board(cfg["i2c"]))
    node.start()                  # restore the ledger, detect the modules
    asyncio.run(node.run())       # sample, latch, save; node.hub for the connectivity layer
"""
import asyncio
import gc
from time import ticks_add, ticks_diff, ticks_ms

from . import log
from .calendar import Calendar
from .clock import Clock
from .hub import Hub
from .ledger import Ledger, LedgerError
from .measure.meter import Meter
from .measure.metering import Metering
from .measure.sampler import POLL_MS, Sampler
from .tasks import Supervisor

RETRY_S = 15          # missing modules are looked for again this often
GC_EVERY_S = 5        # a garbage collection this often
SAVE_RETRY_S = 5      # a ledger save the filesystem refused is tried again after this, doubling
LOST_S = 10           # a module that answered nothing for this long is 'missing'


class Node:
    def __init__(self, cfg, board, ledger_path="energy"):
        self.cfg = cfg
        self.board = board
        self.i2c = board.i2c()
        nid = cfg["node"]["id"] or "rbnode-" + board.unique_id()[-6:]
        self.node_id = nid
        self.ledger = Ledger(ledger_path)
        self.meters = []
        self.hub = Hub(nid, self.meters, self.ledger)
        self.sampler = None
        self.heap_peak = 0
        self.heap_live = 0
        self.supervisor = Supervisor()
        self.tasks = self.supervisor.group("node")
        self._stopped = asyncio.Event()
        self._latch_now = asyncio.Event()
        self._latched = asyncio.Event()
        self._up = [0, ticks_ms()]        # ms running since boot, at ticks
        self.clock = Clock(board, cfg["time"], cfg["time"]["ntp"] if cfg["mqtt"]["host"] else (),
                           self.uptime_ms, board.rtc_ms if cfg["mode"] == "sleep" and
                           board.rtc is not None else board.epoch_ms)
        self.clock.on_change = self._latch_now.set    # a latch, then the buckets by the new time
        self.metering = Metering(self.i2c, self.meters, self.ledger, self.clock.now)
        self.calendar = None      # made by start(), once the ledger is loaded
        self.online = lambda: False   # the network is up (set by the app: NTP needs it)
        self.stay_awake = False     # set by the stay_awake command (sleep mode)
        self.storage = {"ok": True, "error": None, "failures": 0}   # the last ledger save
        self.hub.counters["storage"] = lambda: dict(self.storage, rejected=self.ledger.problems,
                                                     set_aside=self.ledger.set_aside)
        self.hub.counters["node"] = lambda: {
            "rssi": board.rssi(), "uptime": self.uptime_s(), "reset": board.reset_cause(),
            "task_failures": self.supervisor.failures}
        self.hub.counters["clock"] = lambda: {
            "time": self.clock.state(), "tariff": self.ledger.tariff_name(),
            "syncs": self.clock.syncs, "jumps": self.clock.jumps, "error": self.clock.error}
        self.hub.counters["metering"] = lambda: dict(self.metering.outcomes,
                                                      cycles=self.metering.cycles,
                                                      gc=self.metering.fleet.gc)

    # ---- boot ------------------------------------------------------------------------------
    def start(self, keep_reset=False):
        """Restore the ledger, detect the modules. keep_reset: a sleep-mode wake (see
        Meter.detect)."""
        if self.cfg["save_s"] < 60 and self.cfg["mode"] == "continuous":
            log.warning("node", "save_s = %d: %d ledger writes a day wear the flash (see CONFIG.md)",
                        self.cfg["save_s"], 86400 // self.cfg["save_s"])
        seq = self.ledger.load()
        if seq:
            log.info("node", "energy ledger restored from %s (save #%d, %d meter(s))",
                     self.ledger.restored_from, seq, len(self.ledger.meters))
        elif not self.ledger.problems:
            log.info("node", "no energy ledger yet: totals start at 0")
        # the buckets by the clock: once the periods that were open are closed (_metering;
        # in sleep mode the one that spanned the sleep, sleeper.py)
        self.calendar = Calendar(self.clock, self.ledger, self.cfg["tariffs"],
                                 self.cfg["period_s"])
        specs = self.cfg["modules"]
        # a sleep-mode wake skips the bus scan (112 address probes) when modules are named
        found = [] if keep_reset and specs else self._scan()
        if not specs:
            specs = [self._auto_spec(a) for a in found]
            log.info("node", "no modules in config.json: using the %d found on the bus", len(specs))
        tries = self.cfg["i2c"]["retries"]
        for spec in specs:
            m = Meter(spec, self.i2c, tries, self.cfg["events"])
            m.on_event = self._on_power_event
            self.meters.append(m)
            if m.detect(keep_reset):
                self._register(m)
            else:
                log.warning("node", "%s (0x%02x) not found: %s; still looking every %d s",
                            m.id, m.addr, m.problem, RETRY_S)
        known = [s["address"] for s in specs]
        for a in found:
            if a not in known:
                log.warning("node", "unexpected device at 0x%02x on the bus (not in config.json)", a)
        self.sampler = Sampler(self.meters, self.board, self.cfg["drdy_pin"])
        self.hub.counters["drdy"] = lambda: {"edges": self.sampler.edges,
                                             "late_max_ms": self.sampler.late_max}
        gc.collect()
        log.info("node", "heap after boot: %d bytes used, %d free", gc.mem_alloc(), gc.mem_free())
        log.info("node", "%s: %d of %d module(s) measuring, RT by %s", self.node_id,
                 sum(1 for m in self.meters if m.state == "ok"), len(self.meters),
                 "polling every %d ms" % POLL_MS if self.sampler.polling else "DRDY interrupts")

    def _scan(self):
        try:
            return [a for a in self.i2c.scan() if 0x08 <= a <= 0x77]
        except OSError as e:
            log.error("node", "I2C bus scan failed: %s (check wiring and pull-ups)", e)
            return []

    @staticmethod
    def _auto_spec(addr):
        from . import config               # boot only (app.BOOT_ONLY)
        spec = config.check({"modules": [{"address": addr}]})[0]["modules"][0]
        return spec

    def _register(self, m):
        self.ledger.meter(m.key, m.id, m.addr, m.channels)

    def _on_power_event(self, m, ch, before, after):
        self.hub.events.put({"kind": "power", "module": m.id, "ch": ch, "t": self.clock.now(),
                             "before_w": before / 1000, "after_w": after / 1000})

    # ---- services --------------------------------------------------------------------------
    async def run(self):
        """The node's services, supervised (tasks.py), until stop()."""
        t = self.tasks
        t.start("sampler", self.sampler.run)
        t.start("metering", self._metering, beat_s=3 * self.cfg["period_s"] + 5)
        t.start("saver", self._saver)
        t.start("supervise", self._supervise, beat_s=10)
        if self.board.watchdog(self.cfg["watchdog_s"]) is not None:
            t.start("watchdog", self._feed)
        if self.clock.servers:
            t.start("clock", lambda: self.clock.run(self.online))
        await self._stopped.wait()

    def stop(self):
        """Cancel every service of the node (the network's too)."""
        self.supervisor.stop()
        self._stopped.set()

    async def _metering(self):
        """A latch every period_s, on the wall clock's multiples of it once the time is
        valid, and at each boundary of a tariff or a day (calendar.py): what was measured
        before goes to the buckets in force until then, what follows to the new ones."""
        period = self.cfg["period_s"] * 1000
        cal = self.calendar
        cal.update()
        due = ticks_ms()
        while True:
            for rec in await self.metering.cycle():
                self.record(rec)
            cal.update()
            self._heap()
            self._check_swaps()
            self._latched.set()
            self.tasks.beat("metering")
            due = ticks_add(due, period)
            wait = cal.wait_ms()
            if wait is None:
                wait = ticks_diff(due, ticks_ms())
            if wait < 0:
                due, wait = ticks_ms(), 0
            try:
                await asyncio.wait_for_ms(self._latch_now.wait(), wait)
                self._latch_now.clear()
                due = ticks_ms()             # a latch on request starts a new schedule
            except asyncio.TimeoutError:
                pass

    async def latch_now(self, timeout_ms=5000):
        """Close the periods now (the `latch` command); True once the cycle ran."""
        self._latched.clear()
        self._latch_now.set()
        try:
            await asyncio.wait_for_ms(self._latched.wait(), timeout_ms)
            return True
        except asyncio.TimeoutError:
            return False

    def _heap(self, collect=False):
        """Heap high-water mark; with collect, also the live set (a collection every few
        seconds keeps GC pauses short and predictable)."""
        used = gc.mem_alloc()
        if used > self.heap_peak:
            self.heap_peak = used
        if collect:
            gc.collect()
            live = gc.mem_alloc()
            if live > self.heap_live:
                self.heap_live = live

    def record(self, rec):
        """A closed period: its demand, to the hub's feed (the publisher) and the log."""
        m = self.hub.meter(rec["module"])
        if m is not None:
            self.calendar.demand(m, rec)
        self.hub.periods.put(rec)
        self._log_period(rec)

    def _log_period(self, rec):
        tot = self.ledger.meters[rec["key"]]["ch"]
        log.info("period", "%s %s %.1f s: %s", rec["module"], rec["status"], rec["dt_ms"] / 1000,
                 ", ".join("ch%d +%.4f/-%.4f Wh (total %.4f/%.4f)" % (
                     ch, rec["import_wh"][ch], rec["export_wh"][ch], c[0] / 1e6, c[1] / 1e6)
                     for ch, c in enumerate(tot)))

    def _check_swaps(self):
        """A module that rebooted may be another module now: compare its UID."""
        for m in self.metering.members():
            if m.dev.module_reboots != m.reboots_seen:
                m.reboots_seen = m.dev.module_reboots
                try:
                    uid = m.dev.read_uid().hex() if m.uid else None
                except OSError:
                    continue
                if uid and uid != m.uid:
                    log.warning("node", "%s: a different module (uid %s) now answers at 0x%02x: "
                                "new totals", m.id, uid, m.addr)
                    m.uid = m.key = uid
                    self._register(m)

    async def _saver(self):
        """Every save_s; a save the filesystem refused again after 5, 10, 20 ... s (at most
        save_s), metering going on meanwhile."""
        save_s = self.cfg["save_s"]
        wait = save_s
        while True:
            await asyncio.sleep(wait)
            if self.save():
                wait = save_s
            else:
                wait = min(save_s, SAVE_RETRY_S << min(10, self.storage["failures"] - 1))

    def save(self):
        """Write the ledger now (also before any planned reset or sleep). False when it was
        not written: the reason is logged and kept in self.storage (health), never raised."""
        st = self.storage
        try:
            seq = self.ledger.save(self.metering.provisional(), self.clock.now())
        except LedgerError as e:         # never loaded: the flash copy is left alone
            log.error("node", "ledger not saved: %s", e)
            return False
        except OSError as e:             # full, read-only or failing filesystem
            why = _os_error(e)
            st["failures"] += 1
            (log.error if st["failures"] == 1 or why != st["error"] else log.warning)(
                "node", "ledger save failed (%s), attempt %d: metering goes on, the energy is "
                "kept in RAM and saved once the filesystem takes it", why, st["failures"])
            st["ok"], st["error"] = False, why
            return False
        if not st["ok"]:
            log.info("node", "ledger saved again after %d failed attempt(s)", st["failures"])
        st["ok"], st["failures"] = True, 0
        log.debug("node", "ledger saved (#%d), heap peak %d bytes, live %d bytes, DRDY read "
                  "late by up to %d ms", seq, self.heap_peak, self.heap_live,
                  self.sampler.late_max if self.sampler else 0)
        return True

    async def _supervise(self):
        """Every second: lost modules become 'missing', missing ones are looked for again;
        every mqtt.state_s the slow values are read (their only reader is the state
        message: not without MQTT). One task for both: a task costs a chip ~700 B."""
        last = {}
        n = 0
        slow_ms = self.cfg["mqtt"]["state_s"] * 1000 if self.cfg["mqtt"]["host"] else 0
        slow_at = ticks_ms()
        while True:
            await asyncio.sleep(1)
            self.tasks.beat("supervise")
            n += 1
            self.uptime_s()
            self._heap(collect=n % GC_EVERY_S == 0)
            now = ticks_ms()
            if slow_ms and ticks_diff(now, slow_at) >= 0:
                slow_at = ticks_add(now, slow_ms)
                self.sampler.read_slow()
            for m in self.meters:
                if m.state == "ok":
                    seen = last.get(m.id)
                    if seen is None or seen[0] != m.samples:
                        last[m.id] = (m.samples, now)
                    elif ticks_diff(now, seen[1]) > LOST_S * 1000:
                        log.warning("node", "%s (0x%02x) stopped answering", m.id, m.addr)
                        self._book_lost(m)
                        m.lost("no answer for %d s" % LOST_S)
                        self.hub.events.put({"kind": "module_lost", "module": m.id,
                                             "t": self.clock.now()})
                elif ticks_diff(now, m.retry_at) >= 0:
                    m.retry_at = ticks_add(now, RETRY_S * 1000)
                    if m.detect():
                        self._register(m)
                        last.pop(m.id, None)
                        self.hub.events.put({"kind": "module_found", "module": m.id,
                                             "t": self.clock.now()})

    def uptime_s(self):
        return self.uptime_ms() // 1000

    def uptime_ms(self):
        """ms since boot. Accumulated (the supervisor calls it every second): a plain
        ticks_diff from boot wraps after 2**29 ms, 6.2 days."""
        now = ticks_ms()
        up = self._up
        up[0] += ticks_diff(now, up[1])
        up[1] = now
        return up[0]

    def _book_lost(self, m):
        """The shadow and export of a module that left are real energy: book them."""
        if m.has_energy:
            for ch in range(m.channels):
                imp, exp = m.shadow.take_unbooked(ch)
                self.ledger.add(m.key, ch, imp, exp)

    async def _feed(self):
        """Feed the watchdog while the event loop runs and no supervised task is stuck (one
        that fails is restarted by its supervisor: that is not a reason to reset)."""
        while True:
            await asyncio.sleep_ms(1000)
            if not self.supervisor.stuck():
                self.board.feed()


ERRNO = {28: "ENOSPC: filesystem full", 30: "EROFS: read-only filesystem", 5: "EIO: flash I/O error",
         21: "EISDIR: a directory is in the way", 13: "EACCES: permission denied"}


def _os_error(e):
    """An OSError as one line: 'ENOSPC: filesystem full (errno 28)'."""
    n = e.args[0] if e.args and isinstance(e.args[0], int) else None
    return "%s (errno %d)" % (ERRNO[n], n) if n in ERRNO else str(e)[:80]
