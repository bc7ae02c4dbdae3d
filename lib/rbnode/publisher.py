"""What the node publishes over MQTT, and when (the connectivity service).

    net = Publisher(node, cfg)
    net.start()                     # its tasks and the link's, supervised (tasks.py)

Topics (base = <mqtt.base_topic>/<node id>):
    base/status                 "online" / "offline" (retained; will, birth, goodbye)
    base/health                 diagnostics JSON (retained)
    base/<module>/state         RT values JSON (retained): u f i[] p[] s[] q[] pf[]
    base/<module>/energy        totals JSON (retained, QoS 1): uid, imp[] and exp[] in kWh
    base/<module>/period        one record per closed period
    base/events                 power events and module lost / found (QoS 1)
    base/cmd/<name>             commands (see commands.py); results on base/result
    base/stay_awake             sleep mode: a retained "on" keeps the node awake (wakenet.py)
The broker is a mirror of the ledger, never a source: no retained message changes a total
(only the gated commands set_total and restore_totals do, commands.py). At the first connect
the node reads its own retained totals once, as a *floor*: a total is never published below
what the broker already holds for the same module UID, so Home Assistant never sees a dip
(with `total_increasing` it would book one as a meter reset and count again what follows):
  - a lead a power cut can explain (the energy published after the last ledger save, at most
    MAX_W x (save_s + 10 min)): the published total stays at the broker's until the ledger
    passes it; the energy of that lead was lost with the power, and HA's total ends up equal
    to the ledger's;
  - a larger lead (a wiped flash, another client's message): that module's totals are not
    published ("held", in the log and in health) until the ledger passes them or the user
    runs restore_totals (use the broker's totals, or the ledger's: HA then sees a reset).
A module missing at boot is checked when it appears; its totals are published only then.
"""
import asyncio
import gc
import json
import random
import sys
from time import ticks_add, ticks_diff, ticks_ms

try:                                      # the image's version, stamped at build time
    from rbnode_version import VERSION    # (tools/deps.py); running from source: the package's
except ImportError:
    from . import __version__ as VERSION
from . import log
from . import discovery
from .commands import Commands
from .integrate import kwh, parse_kwh_uwh
from .link import Link, utf8
from .outbox import Outbox

RECONCILE_MS = 2000       # wait for the retained totals after the first connect
HA_DELAY_MS = (1000, 5000)  # re-announce this long after HA came online (random)
MAX_W = 30000             # a power cut explains a lead of this power x (save_s + 10 min)


def _num(x, nd):
    if x is None or x != x:
        return "null"
    return ("%." + str(nd) + "f") % x


def _arr(vals, nd):
    return "[" + ",".join(_num(v, nd) for v in vals) + "]"


def state_json(m):
    """The RT values of a meter as JSON text (Q and frequency as the node last read them:
    no I2C here)."""
    rt = m.dev.rt
    n = range(m.channels)
    f = m.f
    if not m.has_energy:
        return '{"f":%s,"i":%s}' % (_num(f, 2), _arr([rt.current[c] for c in n], 3))
    u = rt.voltage
    q = m.q[:m.channels]
    return ('{"u":%s,"f":%s,"i":%s,"p":%s,"s":%s,"q":%s,"pf":%s}' % (
        _num(u, 1), _num(f, 2), _arr([rt.current[c] for c in n], 3),
        _arr([p / 1000 for p in m.p[:m.channels]], 1),
        _arr([u * rt.current[c] for c in n], 1), _arr(q, 1),
        _arr([rt.power_factor[c] for c in n], 3)))


def parse_energy(text):
    """An energy message's text (ours, or the same values re-serialised by another client:
    any spacing, any key order) -> (uid, [import µWh], [export µWh]). The numbers are taken
    as text, without floats (32-bit on the chips). ValueError if it is not such a message."""
    doc = json.loads(text)                 # structure only
    if not (isinstance(doc, dict) and isinstance(doc.get("uid"), str) and all(
            isinstance(doc.get(k), list) and 1 <= len(doc[k]) <= 3 for k in ("imp", "exp"))):
        raise ValueError("not an energy total")
    flat = "".join(text.split())           # JSON text has no needed whitespace outside strings

    def arr(key):
        i = flat.find('"%s":[' % key)
        j = flat.find("]", i)
        if i < 0 or j < 0:
            raise ValueError(key)
        vals = [parse_kwh_uwh(x) for x in flat[i + len(key) + 4:j].split(",")]
        if None in vals:
            raise ValueError(key)
        return vals
    return doc["uid"], arr("imp"), arr("exp")


def _below(c, floor):
    """A channel's [import, export] under a floor [import, export] in either of them."""
    return c[0] < floor[0] or c[1] < floor[1]


PARTS_FILE = "discovery.json"


def _load_parts():
    """How many discovery parts each device has on the broker (kept across boots, written
    only when a count changes: when names get shorter, the parts left over are cleared)."""
    try:
        with open(PARTS_FILE) as f:
            doc = json.load(f)
        return {k: v for k, v in doc.items() if isinstance(v, int) and 0 < v < 64}
    except Exception:  # noqa: BLE001 - missing or damaged: nothing known to clear
        return {}


def _save_parts(parts):
    try:
        with open(PARTS_FILE, "w") as f:
            json.dump(parts, f)
    except OSError as e:
        log.warning("mqtt", "%s not written (%s): parts a shorter configuration leaves "
                    "on the broker may not be cleared", PARTS_FILE, e)


def energy_json(uid, channels):
    """channels: [[import µWh, export µWh]]."""
    return '{"uid":"%s","imp":[%s],"exp":[%s]}' % (
        uid, ",".join(kwh(c[0]) for c in channels), ",".join(kwh(c[1]) for c in channels))


class Publisher:
    """asleep: a sleep-mode wake (wakenet.py) drives it: no schedules or feeds of its own,
    discovery with expire_after instead of availability, the stay_awake flag."""

    def __init__(self, node, cfg, asleep=False):
        self.node = node
        self.asleep = asleep
        self.cfg = cfg
        m = cfg["mqtt"]
        self.m = m
        self.base = "%s/%s" % (m["base_topic"], node.node_id)
        chip = node.board.unique_id()[-6:]       # unique per board, once in the client id
        cid = m["client_id"] or (node.node_id if node.node_id.endswith(chip)
                                 else "%s-%s" % (node.node_id, chip))
        self.outbox = Outbox(32)
        self.tasks = node.supervisor.group("publisher")
        self.link = Link(cfg, cid, self.base + "/status", self.outbox, self._on_up,
                         self._on_message, self._on_bound, self._on_oversize,
                         tasks=node.supervisor.group("link"))
        self.commands = Commands(node, self)
        self.link.subscribe(self.base + "/cmd/+", 1)
        self.link.subscribe(m["discovery_prefix"] + "/status", 1)
        self.reconciled = False           # the broker's retained totals were read
        self.retained = {}                # module name -> retained energy text, until checked
        self.held = {}                    # key -> [[imp, exp]]: the broker's, far above the ledger
        self.sent_parts = _load_parts()   # discovery object id -> parts on the broker
        self.last_p = {}                  # module name -> powers (W) of the last state
        self.ha_due = None
        self.pub_max = {}                 # (uid, ch) -> [import, export] µWh last published
        self.on_bound_action = None       # set by the app: async fn(reason)
        self.extra_drops = 0              # records dropped elsewhere (sleep mode's backlog)
        if asleep:
            self.link.quick = True
            self.link.subscribe(self.base + "/stay_awake", 1)
        node.hub.counters["mqtt"] = self.counters
        self.started = False

    # ---- services ----------------------------------------------------------------------------
    def start(self):
        if not self.asleep:
            self.tasks.start("periodic", self._periodic, beat_s=30)
            self.tasks.start("periods", self._periods)
            self.tasks.start("events", self._events)
        self.link.start()
        self.started = True

    def stop(self):
        self.tasks.stop()
        self.link.stop()

    def _on_up(self):
        if not self.reconciled:
            self.tasks.start("reconcile", self._reconcile)
        elif not self.asleep:
            self.ha_due = ticks_ms()      # the periodic task announces (and retries)

    async def _reconcile(self):
        """Read our own retained totals once: the floors (see the module's docstring)."""
        c = self.link.client
        topic = self.base + "/+/energy"
        await c.subscribe(utf8(topic), 1)
        await asyncio.sleep_ms(RECONCILE_MS)
        await c.unsubscribe(utf8(topic))
        self.reconciled = True
        if not self.asleep:
            self.ha_due = ticks_ms()

    def _floor(self, m, chans):
        """The first time a module's totals are to be published: compare them with the
        broker's retained ones (its floor)."""
        text = self.retained.pop(m.id, None)
        if not text:
            return
        try:
            uid, imps, exps = parse_energy(text.decode())
        except (ValueError, UnicodeError):
            log.warning("mqtt", "%s: the retained energy total on the broker is not one of "
                        "ours: overwritten", m.id)
            return
        if uid != m.key:
            return                        # another module's totals (a swap): a new meter
        most = MAX_W * (self.cfg["save_s"] + 600) * 10**6 // 3600
        n = min(len(chans), len(imps), len(exps))
        lead = max([max(imps[c] - chans[c][0], exps[c] - chans[c][1]) for c in range(n)] or [0])
        if lead > most:
            self.held[m.key] = [[imps[c], exps[c]] for c in range(n)]
            log.error("mqtt", "%s: the broker holds totals up to %s kWh above the ledger's (a "
                      "wiped flash, or another client): its totals are not published until the "
                      "ledger passes them or the restore_totals command says which to use "
                      "(README, Faults and recovery)", m.id, kwh(lead))
            return
        for ch in range(n):
            top = self.pub_max.setdefault((m.key, ch), [0, 0])
            top[0], top[1] = max(top[0], imps[ch]), max(top[1], exps[ch])
        if lead > 0:
            log.warning("mqtt", "%s: the broker's total leads the ledger by %s kWh (published "
                        "after the last save, then a power cut): published as it is until the "
                        "ledger passes it", m.id, kwh(lead))

    def floor_pending(self):
        """A published total rests on a floor the ledger has not reached yet, or a module's
        floor is still unchecked (sleep mode reads the broker again at the next wake)."""
        if self.held or any(m.id in self.retained for m in self.node.meters):
            return True
        led = self.node.ledger.meters
        for (key, ch), top in self.pub_max.items():
            c = led.get(key, {}).get("ch", ())
            if ch < len(c) and _below(c[ch], top):
                return True
        return False

    def restore(self, m, use):
        """The restore_totals command: the broker's held totals into the ledger (use
        "broker"), or the ledger's published as they are (use "ledger": HA books a reset).
        False when there was nothing to decide (no hold; for "ledger", no floor above it)."""
        held = self.held.pop(m.key, None)
        led = self.node.ledger
        above = [ch for ch in range(m.channels) if (m.key, ch) in self.pub_max and
                 _below(led.total(m.key, ch), self.pub_max[(m.key, ch)])]
        if use == "broker" and held:
            for ch, (i, e) in enumerate(held[:m.channels]):
                imp, exp = led.total(m.key, ch)
                led.add(m.key, ch, max(0, i - imp), max(0, e - exp))
        elif use == "ledger":
            for ch in range(m.channels):
                self.pub_max.pop((m.key, ch), None)
        done = held is not None or (use == "ledger" and bool(above))
        if done:
            log.warning("mqtt", "%s: restore_totals: the %s's totals are used", m.id, use)
        return done

    def announce(self):
        """Discovery (if enabled), then every current value: after each connect and when
        Home Assistant comes online."""
        if self.m["discovery"]:
            self.publish_discovery()
        self.publish_values(last=True)        # after the discovery

    def publish_discovery(self):
        node = self.node
        mods = []
        for m in node.meters:
            if m.state != "ok" or m.key is None:
                continue
            mods.append({"id": m.id, "name": m.label, "uid": m.key, "variant": m.dev.variant_name(),
                         "fw": "1.%d" % (m.dev.firmware_version - 1), "channels": m.channels,
                         "channel_names": m.spec["channels"], "voltage": m.has_energy,
                         "export": m.export and not self.asleep})   # sleep: import only
        info = {"name": self.cfg["node"]["name"], "sw": VERSION,
                "model": "rbnode on %s" % sys.platform}
        pre = self.m["discovery_prefix"]
        expire = None
        if self.asleep:     # one missed wake is not "unavailable", two are
            expire = 3 * self.cfg["period_s"] + self.cfg["sleep"]["awake_s"]
        for oid, parts, _ in discovery.devices(self.m["base_topic"], node.node_id, info,
                                                  mods, expire_after=expire):
            for i, p in enumerate(parts):
                self.outbox.latest(discovery.topic(pre, oid, i), p, True, 1)
            # clear the parts a longer configuration published and this one does not need;
            # never a slot that was not published (HA warns for each of them)
            for i in range(len(parts), self.sent_parts.get(oid, 0)):
                self.outbox.latest(discovery.topic(pre, oid, i), "", True, 1)
            if self.sent_parts.get(oid) != len(parts):
                self.sent_parts[oid] = len(parts)
                _save_parts(self.sent_parts)

    def publish_values(self, last=False):
        self.publish_states(last)
        self.publish_energy(last)
        self.publish_health(last)

    def publish_states(self, last=False):
        for m in self.node.meters:
            if m.state == "ok":
                self.publish_state(m, last)

    def publish_state(self, m, last=False):
        try:
            self.outbox.latest("%s/%s/state" % (self.base, m.id), state_json(m), True, 0,
                               last)
        except (OSError, AttributeError):
            return
        self.last_p[m.id] = list(m.p)

    def publish_energy(self, last=False):
        if not self.reconciled:
            return
        led = self.node.ledger
        prov = self.node.metering.provisional()
        for m in self.node.meters:
            if m.key is None or m.key not in led.meters or not m.has_energy:
                continue
            chans = [list(c) for c in led.meters[m.key]["ch"]]
            for ch, (imp, exp) in enumerate(prov.get(m.key, ())):
                if ch < len(chans):
                    chans[ch][0] += imp
                    chans[ch][1] += exp
            self._floor(m, chans)
            held = self.held.get(m.key)
            if held is not None:
                if any(ch < len(chans) and _below(chans[ch], h) for ch, h in enumerate(held)):
                    continue                  # not published: below the broker's
                del self.held[m.key]
                log.info("mqtt", "%s: the ledger passed the broker's totals: published again",
                         m.id)
            for ch, c in enumerate(chans):
                # The open period's shadow can exceed what its latch then books by a few
                # mWh, and a floor can lead the ledger: a published total never goes back,
                # the next increase absorbs it.
                top = self.pub_max.setdefault((m.key, ch), [0, 0])
                for k in (0, 1):
                    if c[k] < top[k]:
                        c[k] = top[k]
                    top[k] = c[k]
            self.outbox.latest("%s/%s/energy" % (self.base, m.id),
                               energy_json(m.key, chans), True, 1, last)

    def publish_health(self, last=False):
        h = self.node.hub.health()
        meters = h["meters"].values()
        node = self.node
        doc = {"rssi": node.board.rssi(), "uptime": node.uptime_s(),
               "heap": gc.mem_free(), "retries": sum(x["retries"] for x in meters),
               "exhausted": sum(m.dev.retry_exhaustion_count for m in node.meters if m.dev),
               "stale": h["metering"]["stale"],
               "rejects": sum(m.dev.sanity_reject_count for m in node.meters if m.dev),
               "drops": self.outbox.dropped + h["periods_dropped"] + h["events_dropped"]
               + self.extra_drops, "rx_drops": self.link.rx_dropped(),
               "fw": VERSION, "reset": node.board.reset_cause(),
               "modules": {m.id: m.state for m in node.meters},
               "storage": node.storage["error"] if not node.storage["ok"] else (
                   "ledger rejected" if node.ledger.set_aside else "ok"),
               "held": [m.id for m in node.meters if m.key in self.held],
               "connects": self.link.connects,
               "task_failures": node.supervisor.failures}
        self.outbox.latest(self.base + "/health", json.dumps(doc), True, 0, last)

    def stay_awake_flag(self, on):
        """Sleep mode: the retained flag follows the stay_awake command, so the next wake
        does what the last command said."""
        if self.asleep:
            self.outbox.latest(self.base + "/stay_awake", "on" if on else "off", True, 1)

    def result(self, doc):
        self.outbox.put(self.base + "/result", json.dumps(doc), False, 1, keep=True)

    # ---- incoming --------------------------------------------------------------------------
    def _on_message(self, topic, msg, retained):
        if topic.startswith(self.base + "/cmd/"):
            self.commands.handle(topic[len(self.base) + 5:], msg, retained)
        elif topic == self.base + "/stay_awake":
            on = bytes(msg).strip().lower() in (b"on", b"1", b"true", b"yes")
            if on != self.node.stay_awake:
                log.info("mqtt", "stay_awake flag %s", "on: the node stays awake" if on else
                         "off: the node sleeps again")
            self.node.stay_awake = on
        elif topic == self.m["discovery_prefix"] + "/status":
            if msg == b"online" and not retained:
                lo, hi = HA_DELAY_MS
                self.ha_due = ticks_add(ticks_ms(), lo + random.getrandbits(12) % (hi - lo))
                log.info("mqtt", "Home Assistant is online: discovery again shortly")
        elif topic.endswith("/energy") and not self.reconciled and retained:
            if len(msg) <= 512:           # ours are < 100 bytes
                self.retained[topic[len(self.base) + 1:-len("/energy")]] = bytes(msg)

    def _on_oversize(self, topic, n, retained):
        if topic.startswith(self.base + "/cmd/"):
            self.commands.too_long(topic[len(self.base) + 5:], n)

    async def _on_bound(self, why):
        if self.on_bound_action:
            await self.on_bound_action(why)

    # ---- schedules -----------------------------------------------------------------------------
    async def _periodic(self):
        """States every state_s, at once on a change beyond delta_w; health every health_s;
        the delayed re-announcement for Home Assistant."""
        m = self.m
        t_state = t_health = ticks_ms()
        while True:
            await asyncio.sleep_ms(200)
            self.tasks.beat("periodic")
            now = ticks_ms()
            if self.ha_due is not None and ticks_diff(now, self.ha_due) >= 0:
                self.announce()               # raises (e.g. MemoryError): due still, retried
                self.ha_due = None
            if ticks_diff(now, t_state) >= m["state_s"] * 1000:
                t_state = now
                self.publish_states()
            elif m["delta_w"]:
                lim = m["delta_w"] * 1000
                for mt in self.node.meters:
                    last = self.last_p.get(mt.id)
                    if mt.state == "ok" and last and any(
                            abs(mt.p[c] - last[c]) > lim for c in range(mt.channels)):
                        self.publish_state(mt)
            if ticks_diff(now, t_health) >= m["health_s"] * 1000:
                t_health = now
                self.publish_health()

    async def _periods(self):
        """Period records from the hub, then the totals."""
        hub = self.node.hub
        while True:
            rec = await hub.periods.get()
            self.outbox.put("%s/%s/period" % (self.base, rec["module"]), json.dumps(rec))
            self.publish_energy()

    async def _events(self):
        """Events from the hub; a power event also sends that module's state at once."""
        hub = self.node.hub
        while True:
            ev = await hub.events.get()
            self.outbox.put(self.base + "/events", json.dumps(ev), False, 1)
            m = hub.meter(ev.get("module"))
            if m is not None and m.state == "ok" and ev["kind"] == "power":
                self.publish_state(m)

    def counters(self):
        c = self.link.client
        return {"online": self.link.online, "connects": self.link.connects,
                "received_dropped": c.queue.discards if c else 0,
                "oversize": self.link.oversize, "unhandled": self.link.unhandled,
                "attempts": self.link.attempts, "queued": len(self.outbox),
                "dropped": self.outbox.dropped, "published": self.link.published}
