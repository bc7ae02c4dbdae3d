"""What the node publishes over MQTT, and when (the connectivity service).

    net = Publisher(node, cfg)
    net.start()                     # its tasks and the link's, supervised (tasks.py)

Topics (base = <mqtt.base_topic>/<node id>):
    base/status                 "online" / "offline" (retained; will, birth, goodbye)
    base/health                 diagnostics JSON (retained)
    base/<module>/state         RT values JSON (retained): u f i[] p[] s[] q[] pf[]
    base/<module>/energy        totals JSON (retained, QoS 1): uid, imp[] and exp[] in kWh
    base/<module>/usage         today, yesterday, this month, per tariff (kWh) and demand (W)
                                JSON (retained; payload.usage_json)
    base/<module>/period        one record per closed period
    base/events                 power events and module lost / found (QoS 1)
    base/ota                    the over-the-air update's state (retained; ota/update.py)
    base/cmd/<name>             commands (see commands.py); results on base/result
    base/stay_awake             sleep mode: a retained "on" keeps the node awake (wakenet.py)
The broker is a mirror of the ledger, never a source: no retained message changes a total
(only the gated commands set_total and restore_totals do, commands.py). At the first connect
the node reads its own retained totals once, as *floors* (floors.py): a total is never
published below what the broker already holds for the same module UID, so Home Assistant
never sees a dip (with `total_increasing` it would book one as a meter reset and count again
what follows). A module missing at boot is checked when it appears; its totals are published
only then. The payloads: payload.py and discovery.py.
"""
import asyncio
import json
import random
import sys
from time import ticks_add, ticks_diff, ticks_ms

from .. import log
from ..version import VERSION
from .floors import Floors
from .link import Link, Pieces, utf8
from .outbox import Outbox
from .payload import energy_json, state_json, usage_json

RECONCILE_MS = 2000       # wait for the retained totals after the first connect
HA_DELAY_MS = (1000, 5000)  # re-announce this long after HA came online (random)


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
        self.commands = None              # made at the first command (_commands)
        self.updater = None               # over-the-air updates (the app: ota.enabled, a trial)
        self.link.subscribe(self.base + "/cmd/+", 1)
        self.link.subscribe(m["discovery_prefix"] + "/status", 1)
        self.reconciled = False           # the broker's retained totals were read
        self.floors = Floors(cfg["save_s"])   # the broker's totals: never published below
        self.sent_parts = _load_parts()   # discovery object id -> parts on the broker
        self.last_p = {}                  # module name -> powers (W) of the last state
        self.ha_due = None
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
            self.tasks.start("feeds", self._feeds)
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
        """Read our own retained totals once: the floors (floors.py)."""
        c = self.link.client
        topic = self.base + "/+/energy"
        await c.subscribe(utf8(topic), 1)
        await asyncio.sleep_ms(RECONCILE_MS)
        await c.unsubscribe(utf8(topic))
        self.reconciled = True
        if not self.asleep:
            self.ha_due = ticks_ms()

    async def announce(self):
        """Discovery (if enabled), then every current value: after each connect and when
        Home Assistant comes online."""
        if self.m["discovery"]:
            await self.publish_discovery()
        self.publish_values(last=True)        # after the discovery

    async def publish_discovery(self):
        """The discovery messages, each built when the broker has the one before
        (discovery.py makes them one at a time): the heap holds one message, never the whole
        configuration (3 modules: about 10 KB of text and 20 KB of dicts at once, which a
        chip's heap did not have at connect), nor several in flight.
        discovery.py itself (and names.py, which it needs) is loaded for it and dropped after."""
        from . import discovery
        try:
            await self._discovery(discovery)
        finally:
            from rbnode import forget
            forget("net.discovery")
            forget("names")

    async def _discovery(self, discovery):
        node = self.node
        mods = []
        sch = node.calendar.schedule if node.calendar else None
        tariffs = sch.names if sch else []
        for m in node.meters:
            if m.state != "ok" or m.key is None:
                continue
            mods.append({"id": m.id, "name": m.label, "uid": m.key, "variant": m.dev.variant_name(),
                         "fw": "1.%d" % (m.dev.firmware_version - 1), "channels": m.channels,
                         "channel_names": m.spec["channels"], "voltage": m.has_energy,
                         "export": m.export and not self.asleep,    # sleep: import only
                         "tariffs": tariffs})
        info = {"name": self.cfg["node"]["name"], "sw": VERSION,
                "model": "rbnode on %s" % sys.platform, "ota": self.updater is not None}
        pre = self.m["discovery_prefix"]
        expire = None
        if self.asleep:     # one missed wake is not "unavailable", two are
            expire = 3 * self.cfg["period_s"] + self.cfg["sleep"]["awake_s"]
        for oid, parts, _ in discovery.devices(self.m["base_topic"], node.node_id, info,
                                                  mods, expire_after=expire):
            n = 0
            for p in parts:
                await self._queue_part(discovery.topic(pre, oid, n), Pieces(p))
                n += 1
            # clear the parts a longer configuration published and this one does not need;
            # never a slot that was not published (HA warns for each of them)
            for i in range(n, self.sent_parts.get(oid, 0)):
                await self._queue_part(discovery.topic(pre, oid, i), "")
            if self.sent_parts.get(oid) != n:
                self.sent_parts[oid] = n
                _save_parts(self.sent_parts)

    async def _queue_part(self, topic, payload):
        self.outbox.latest(topic, payload, True, 1)
        while self.link.pending(topic):           # until the broker has it: one at a time
            self.tasks.beat("periodic")
            await asyncio.sleep_ms(10)

    def publish_values(self, last=False):
        self.publish_states(last)
        self.publish_energy(last)
        self.publish_health(last)
        if self.updater is not None:
            self.updater.publish(last)

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
        node = self.node
        led = node.ledger
        prov = node.metering.provisional()
        clock = node.clock.state()
        for m in node.meters:
            if m.key is None or m.key not in led.meters or not m.has_energy:
                continue
            view = led.view(m.key, prov.get(m.key))
            self.outbox.latest("%s/%s/usage" % (self.base, m.id),
                               usage_json(view, m, led.tariff_name(), clock), True, 0, last)
            chans = view["ch"]
            # the open period's shadow can exceed what its latch then books by a few mWh,
            # and a floor can lead the ledger: raised to the floors, or held below them
            if not self.floors.publishable(m, chans):
                continue
            self.outbox.latest("%s/%s/energy" % (self.base, m.id),
                               energy_json(m.key, chans), True, 1, last)

    def publish_health(self, last=False):
        self.outbox.latest(self.base + "/health", json.dumps(self.node.hub.summary()), True, 0,
                           last)

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
            self._commands().handle(topic[len(self.base) + 5:], msg, retained)
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
            self.floors.offer(topic[len(self.base) + 1:-len("/energy")], msg)

    def _commands(self):
        """The command handler, loaded at the first command: most nodes never get one, and
        commands.py is 1.5 KB of heap on a chip while it is loaded."""
        if self.commands is None:
            from .commands import Commands
            self.commands = Commands(self.node, self)
        return self.commands

    def _on_oversize(self, topic, n, retained):
        if topic.startswith(self.base + "/cmd/"):
            self._commands().too_long(topic[len(self.base) + 5:], n)

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
            due = self.ha_due
            if due is not None and ticks_diff(now, due) >= 0:
                await self.announce()         # raises (e.g. MemoryError): due still, retried
                if self.ha_due == due:        # not asked again meanwhile (a reconnect)
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

    async def _feeds(self):
        """The hub's feeds, one task for both (a task costs a chip ~700 B): each period
        record, then the totals; each event, and for a power event that module's state."""
        hub = self.node.hub
        while True:
            rec = hub.periods.take()
            if rec is not None:
                self.outbox.put("%s/%s/period" % (self.base, rec["module"]), json.dumps(rec))
                self.publish_energy()
                continue
            ev = hub.events.take()
            if ev is None:
                await hub.changed()
                continue
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
                "dropped": self.outbox.dropped, "backlog_dropped": self.extra_drops,
                "published": self.link.published, "rx_drops": self.link.rx_dropped(),
                "held": [m.id for m in self.node.meters if m.key in self.floors.held]}
