"""The node's internal interface: what the connectivity layer (and anything else) reads.

    hub.meters              list of Meter: .id .label .state .problem .dev.rt (latest RT block)
    await hub.periods.get() period records (dicts, see metering.py), oldest first
    await hub.events.get()  power events and node events (dicts with "kind")
    hub.periods.take()      the oldest record or None, without waiting (also .events)
    await hub.changed()     until a record or an event is put (one reader serves both feeds)
    hub.totals()            {meter name: [[import_wh, export_wh] per channel]}
    hub.health()            counters: samples, read errors, period outcomes, ledger, heap
    hub.summary()           the health document the node publishes (one figure per key)
Feeds are bounded: when nobody reads, the oldest record is dropped and counted, so a
stalled consumer never blocks or exhausts the sampling side; without a network at all
(no_reader()) nothing is kept.
"""
import asyncio
import gc

from .version import VERSION


class Feed:
    def __init__(self, size=32, ev=None):
        self.size = size
        self.items = []
        self.dropped = 0
        self.count = 0
        self._ev = asyncio.Event() if ev is None else ev   # set at each put

    def put(self, item):
        if not self.size:                 # nobody reads this feed (Hub.no_reader)
            self.count += 1
            return
        if len(self.items) >= self.size:
            self.items.pop(0)
            self.dropped += 1
        self.items.append(item)
        self.count += 1
        self._ev.set()

    async def get(self):
        while not self.items:
            self._ev.clear()
            await self._ev.wait()
        return self.items.pop(0)

    def take(self):
        return self.items.pop(0) if self.items else None

    def drain(self):
        out, self.items = self.items, []
        return out


class Hub:
    def __init__(self, node_id, meters, ledger):
        self.node_id = node_id
        self.meters = meters
        self.ledger = ledger
        self._put = asyncio.Event()
        self.periods = Feed(32, self._put)
        self.events = Feed(32, self._put)
        self.counters = {}       # filled by the node's services (name -> fn returning a dict)
        self.safe_mode = None    # list of messages when the node runs in safe mode

    async def changed(self):
        """Until something is put on a feed (take() found both empty just before)."""
        self._put.clear()
        await self._put.wait()

    def no_reader(self):
        """No network in this run: records and events are counted, not kept (kept, they
        would fill the feeds and count every later one as dropped)."""
        for f in (self.periods, self.events):
            f.size = 0
            f.items = []

    def meter(self, name):
        for m in self.meters:
            if m.id == name:
                return m
        return None

    def totals(self):
        out = {}
        for m in self.meters:
            if m.key is None or m.key not in self.ledger.meters:
                continue
            out[m.id] = [[c[0] / 1e6, c[1] / 1e6] for c in self.ledger.meters[m.key]["ch"]]
        return out

    def health(self):
        h = {"meters": {m.id: {"state": m.state, "problem": m.problem, "samples": m.samples,
                                 "read_errors": m.read_errors, "gap_ms": m.shadow.gap_ms,
                                 "count_mismatch": m.booking.count_mismatch,
                                 "retries": m.dev.retry_count_total if m.dev else 0}
                        for m in self.meters},
             "periods_dropped": self.periods.dropped, "events_dropped": self.events.dropped,
             "ledger_saves": self.ledger.saves, "ledger_rejected": self.ledger.rejected,
             "mem_free": gc.mem_free()}
        for name, fn in self.counters.items():
            h[name] = fn()
        return h

    def summary(self):
        """The health document: the node's services' counters (health()) folded into one
        figure each. Keys the Home Assistant diagnostics read (discovery.py)."""
        h = self.health()
        ms = self.meters
        n, s = h["node"], h["storage"]
        net = h.get("mqtt") or {}
        return {"rssi": n["rssi"], "uptime": n["uptime"], "heap": h["mem_free"],
                "retries": sum(x["retries"] for x in h["meters"].values()),
                "exhausted": sum(m.dev.retry_exhaustion_count for m in ms if m.dev),
                "stale": h["metering"]["stale"],
                "rejects": sum(m.dev.sanity_reject_count for m in ms if m.dev),
                "drops": net.get("dropped", 0) + net.get("backlog_dropped", 0)
                + h["periods_dropped"] + h["events_dropped"],
                "rx_drops": net.get("rx_drops", 0), "fw": VERSION, "reset": n["reset"],
                "modules": {m.id: m.state for m in ms},
                "storage": s["error"] if not s["ok"] else (
                    "ledger rejected" if s["set_aside"] else "ok"),
                "held": net.get("held", []), "connects": net.get("connects", 0),
                "task_failures": n["task_failures"],
                "time": (h.get("clock") or {}).get("time"),
                "tariff": (h.get("clock") or {}).get("tariff")}
