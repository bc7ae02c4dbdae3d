"""MQTT commands: <base>/cmd/<name> with a JSON object; the result goes to <base>/result.

    {"id": "r1"}                                              latch       close the periods now
    {"id": "r2", "module": "mains", "channel": 0,
     "import_kwh": 1234.5, "export_kwh": 0}                   set_total   seed a total (migration)
    {"id": "r3", "module": "mains", "channel": 0, "amps": 50} set_ct      (allow_remote_config)
    {"id": "r4", "module": "mains", "class": "sct013"}        set_sensor_class (allow_remote_config)
    {"id": "r5"}                                              discovery   announce again
    {"id": "r6"}                                              reboot      save, offline, reset
    {"id": "r7", "on": true}                                  stay_awake  (sleep mode)
    {"id": "r8", "module": "mains", "use": "broker"}          restore_totals (allow_totals)
    {"id": "r9"}                                              sync_time   ask the NTP servers now
    {"id": "ra", "tariff": "peak"}                            set_tariff  (allow_remote_config)
    {"id": "rb", "url": "http://host/rbnode-0.2.0.rbota", "version": "0.2.0"}
                                                              ota         (ota.enabled)
    {"id": "rc"}                                              ota_rollback (ota.enabled)
ota downloads a signed update and restarts into it (rbnode/ota/update.py): its result says
it started; the progress and the outcome are on <base>/ota. ota_rollback restarts into the
version that ran before the update.
set_tariff puts a configured tariff in force now (an external signal, e.g. the utility's
ripple control), until the next set_tariff; "auto" returns to the schedule. The period is
latched first: what was measured before goes to the tariff in force until then.
set_total and restore_totals change totals: only with mqtt.allow_totals (off by default).
Result: {"id": <the request's id>, "cmd": <name>, "ok": true/false, "error": "..."}.
Every problem (not JSON, empty, retained, unknown command or key, wrong type, unknown
module, a total that would decrease, a gate that is off, too many too fast) is an error
result and changes nothing. A command is a non-empty JSON object ({} at least): an empty
message (what clears a retained one) is no command. Each command has a rate limit (RATE: a
burst, then one per interval); reboot is refused in the first REBOOT_HOLD_S after a boot, so
a command that keeps arriving (retained: a broker delivers it to a live subscriber as a
plain message, and again at every connect) cannot make a reboot loop.
"""
import asyncio
import json
from time import ticks_add, ticks_diff, ticks_ms

from rbamp import CT_CODES, RbAmpSensorClass

from .. import log
from ..integrate import parse_kwh_uwh
from ..names import clean, quoted

MAX_PAYLOAD = 512
# name -> {key: (type name, required)}
SPECS = {
    "latch": {},
    "set_total": {"module": ("name", True), "channel": ("channel", True),
                  "import_kwh": ("kwh", False), "export_kwh": ("kwh", False)},
    "set_ct": {"module": ("name", True), "channel": ("channel", True), "amps": ("amps", True)},
    "set_sensor_class": {"module": ("name", True), "class": ("class", True)},
    "discovery": {},
    "reboot": {},
    "stay_awake": {"on": ("bool", True)},
    "restore_totals": {"module": ("name", True), "use": ("use", True)},
    "sync_time": {},
    "set_tariff": {"tariff": ("tariff", True)},
    "ota": {"url": ("url", True), "version": ("version", True)},
    "ota_rollback": {},
}
REMOTE_CONFIG = ("set_ct", "set_sensor_class", "set_tariff")
TOTALS = ("set_total", "restore_totals")
OTA = ("ota", "ota_rollback")
MAX_KWH_DIGITS = 10       # set_total: at most 9 999 999 999 kWh
# name -> (burst, interval s): `burst` at once, then one per interval
RATE = {"latch": (3, 10), "discovery": (2, 30), "reboot": (1, 300), "stay_awake": (5, 1),
        "set_total": (10, 2), "restore_totals": (3, 10), "set_ct": (3, 10),
        "set_sensor_class": (2, 30), "sync_time": (2, 30), "set_tariff": (5, 10),
        "ota": (5, 30), "ota_rollback": (2, 60)}
REBOOT_HOLD_S = 60


class CommandError(ValueError):
    pass


def parse(name, payload):
    """(name, args) of a valid command, else CommandError naming the problem. Pure."""
    if name not in SPECS:
        raise CommandError("unknown command %r (known: %s)" % (name[:32], ", ".join(SPECS)))
    if len(payload) > MAX_PAYLOAD:
        raise CommandError("payload of %d bytes, at most %d" % (len(payload), MAX_PAYLOAD))
    if not payload.strip():
        raise CommandError("empty payload: a command is a JSON object ({} at least)")
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeError):
        raise CommandError("payload is not JSON")
    if not isinstance(doc, dict):
        raise CommandError("payload must be a JSON object {...}")
    spec = SPECS[name]
    args = {}
    for k, v in doc.items():
        if k == "id":
            continue
        if k not in spec:
            raise CommandError("%s: unknown key %r (allowed: %s)" % (
                name, str(k)[:32], ", ".join(("id",) + tuple(spec))))
        args[k] = _value(name, k, spec[k][0], v)
    for k, (kind, required) in spec.items():
        if required and k not in args:
            raise CommandError("%s: %r missing" % (name, k))
    return args


def _value(cmd, key, kind, v):
    def bad(what):
        raise CommandError("%s: %s = %s: %s" % (cmd, key, json.dumps(v)[:40], what))
    if kind == "name":
        if not isinstance(v, str) or not v:
            bad("must be a module name")
        return v
    if kind == "channel":
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 2:
            bad("must be a channel number 0..2")
        return v
    if kind == "kwh":
        uwh = None
        if not (isinstance(v, float) and not v < 1e9) and len(str(v).partition(".")[0]) <= \
                MAX_KWH_DIGITS:
            uwh = parse_kwh_uwh(v)
        if uwh is None:
            bad("must be a number of kWh, 0 to %s" % ("9" * MAX_KWH_DIGITS))
        return uwh
    if kind == "use":
        if v not in ("broker", "ledger"):
            bad('must be "broker" (take the broker\'s totals) or "ledger" (publish the '
                'ledger\'s)')
        return v
    if kind == "amps":
        if isinstance(v, bool) or v not in CT_CODES:
            bad("must be one of %s" % ", ".join(str(a) for a in sorted(CT_CODES)))
        return v
    if kind == "class":
        if v != "sct013":
            bad("must be \"sct013\"")
        return v
    if kind == "url":
        if not isinstance(v, str) or not (v.startswith("http://") or v.startswith("https://")) \
                or len(v) > 400:
            bad("must be an http:// or https:// URL of at most 400 characters")
        return v
    if kind == "version":
        if not isinstance(v, str) or not 0 < len(v) <= 32:
            bad("must be the update's version, e.g. \"0.2.0\"")
        return v
    if kind == "tariff":
        if not isinstance(v, str) or not v or len(v) > 16:
            bad('must be the name of a configured tariff, or "auto" (the schedule)')
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            bad("must be true or false")
        return v
    bad("?")


class Rate:
    """Per-command limits: a burst, then one per interval (GCRA: `due` is when the bucket
    is full again)."""

    def __init__(self, limits):
        self.limits = limits
        self.due = {}

    def wait_s(self, name, now):
        """0 and counted when `name` may run now, else the seconds until it may."""
        burst, every = self.limits[name]
        every *= 1000
        due = self.due.get(name, now)
        ahead = ticks_diff(due, now)
        if ahead < 0 or ahead > burst * every:      # idle (or ticks wrapped long ago)
            due, ahead = now, 0
        if ahead > (burst - 1) * every:
            return (ahead - (burst - 1) * every + 999) // 1000
        self.due[name] = ticks_add(due, every)
        return 0


class Commands:
    def __init__(self, node, net):
        self.node = node
        self.net = net
        self.handled = 0
        self.errors = 0
        self.rate = Rate(RATE)

    def handle(self, name, payload, retained=False):
        """Parse and run one command (payload: bytes); always answers on the result topic."""
        rid = None
        try:
            if len(payload) > MAX_PAYLOAD:
                raise CommandError("payload of %d bytes, at most %d" % (len(payload), MAX_PAYLOAD))
            text = bytes(payload).decode()
            rid = _request_id(text)
            if retained:
                raise CommandError("retained: a command is sent without the retain flag "
                                   "(clear it with an empty retained message)")
            args = parse(name, text)
            if name in REMOTE_CONFIG and not self.net.cfg["mqtt"]["allow_remote_config"]:
                raise CommandError("%s: remote configuration is off (mqtt.allow_remote_config)"
                                   % name)
            if name in OTA and self.net.updater is None:
                raise CommandError("%s: over-the-air updates are off (ota.enabled)" % name)
            if name in TOTALS and not self.net.cfg["mqtt"]["allow_totals"]:
                raise CommandError("%s: changing totals over MQTT is off (mqtt.allow_totals)"
                                   % name)
            if name == "reboot" and self.node.uptime_s() < REBOOT_HOLD_S:
                raise CommandError("reboot: refused in the first %d s after a boot (the node "
                                   "is up %d s)" % (REBOOT_HOLD_S, self.node.uptime_s()))
            wait = self.rate.wait_s(name, ticks_ms())
            if wait:
                burst, every = RATE[name]
                raise CommandError("%s: too many (at most %d at once, then one every %d s): "
                                   "try again in %d s" % (name, burst, every, wait))
            self.net.tasks.spawn(self._run(rid, name, args))
        except CommandError as e:
            self._answer(rid, name, False, error=str(e))
        except UnicodeError:
            self._answer(rid, name, False, error="payload is not UTF-8 text")
        except Exception as e:  # noqa: BLE001 - e.g. JSON nested too deep: still an answer
            self._answer(rid, name, False, error="payload not usable: %r" % (e,))

    def too_long(self, name, n):
        """A command the link did not take in (longer than it reads): refused unread."""
        self._answer(None, name, False, error="payload of %d bytes, at most %d" % (
            n, MAX_PAYLOAD))

    def _answer(self, rid, name, ok, **extra):
        doc = {"id": rid, "cmd": name[:32], "ok": ok}
        doc.update(extra)
        for k, v in doc.items():           # what was received goes back as valid UTF-8
            if isinstance(v, str):
                doc[k] = clean(v)
        self.handled += 1
        if not ok:
            self.errors += 1
            log.warning("cmd", "%s refused: %s", quoted(name[:32]), doc.get("error"))
        self.net.result(doc)

    async def _run(self, rid, name, args):
        try:
            extra = await getattr(self, "_" + name)(**args) or {}
        except CommandError as e:
            return self._answer(rid, name, False, error=str(e))
        except OSError as e:
            return self._answer(rid, name, False, error="module I/O: %s" % (e,))
        self._answer(rid, name, True, **extra)

    def _meter(self, name):
        m = self.node.hub.meter(name)
        if m is None:
            raise CommandError("no module named %r" % name[:32])
        if m.state != "ok" or m.key not in self.node.ledger.meters:
            raise CommandError("module %s is %s" % (name, m.state))
        return m

    async def _latch(self):
        if not await self.node.latch_now():
            raise CommandError("latch: the period cycle did not run within 5 s")

    async def _set_total(self, module, channel, import_kwh=None, export_kwh=None):
        m = self._meter(module)
        if not m.has_energy:
            raise CommandError("set_total: %s measures no energy (current-only module)" % module)
        if channel >= m.channels:
            raise CommandError("set_total: %s has %d channel(s)" % (module, m.channels))
        led = self.node.ledger
        imp, exp = led.total(m.key, channel)
        ni = imp if import_kwh is None else import_kwh
        ne = exp if export_kwh is None else export_kwh
        if ni < imp or ne < exp:
            raise CommandError("set_total: totals never decrease (%s now has %d/%d mWh)"
                               % (module, imp // 1000, exp // 1000))
        led.add(m.key, channel, ni - imp, ne - exp)
        self.node.save()
        self.net.publish_energy()
        log.info("cmd", "%s ch%d total set to %d/%d mWh", module, channel, ni // 1000, ne // 1000)

    async def _restore_totals(self, module, use):
        m = self._meter(module)
        if not m.has_energy:
            raise CommandError("restore_totals: %s measures no energy" % module)
        if not self.net.floors.restore(m, use, self.node.ledger):
            raise CommandError("restore_totals: nothing held for %s (its totals are "
                               "published)" % module)
        self.node.save()
        self.net.publish_energy()

    async def _set_ct(self, module, channel, amps):
        m = self._meter(module)
        if channel >= m.channels:
            raise CommandError("set_ct: %s has %d channel(s)" % (module, m.channels))
        return {"changed": m.set_ct([(channel, amps)])}

    async def _set_sensor_class(self, module, **_):
        m = self._meter(module)
        changed = m.dev.set_sensor_class(RbAmpSensorClass.SCT_013, save=True)
        return {"changed": changed}

    async def _discovery(self):
        await self.net.announce()

    async def _sync_time(self):
        clock = self.node.clock
        if not clock.servers:
            raise CommandError("sync_time: no NTP server (time.ntp, and mqtt.host set)")
        if not await clock.sync():
            raise CommandError("sync_time: %s" % clock.error)
        return {"time": clock.text()}

    async def _set_tariff(self, tariff):
        cal = self.node.calendar
        names = cal.schedule.names if cal.schedule else []
        if tariff != "auto" and tariff not in names:
            raise CommandError("set_tariff: no tariff %r (configured: %s)" % (
                tariff, ", ".join(names + ["auto"]) if names else "none"))
        cal.forced = None if tariff == "auto" else tariff
        if not await self.node.latch_now():
            raise CommandError("set_tariff: the period cycle did not run within 5 s")
        return {"tariff": self.node.ledger.tariff_name()}

    async def _ota(self, url, version):
        from ..ota.update import OtaError
        try:
            return self.net.updater.begin(url, version)
        except OtaError as e:
            raise CommandError("ota: %s" % e)

    async def _ota_rollback(self):
        from ..ota.update import OtaError
        try:
            return self.net.updater.rollback()
        except OtaError as e:
            raise CommandError("ota_rollback: %s" % e)

    async def _reboot(self):
        self.net.tasks.spawn(self._reboot_later())

    async def _reboot_later(self):
        await asyncio.sleep_ms(500)           # let the result go out first
        self.node.save()
        await self.net.link.goodbye()
        self.node.board.reset()

    async def _stay_awake(self, on):
        self.node.stay_awake = on
        self.net.stay_awake_flag(on)
        return {"mode": self.node.cfg["mode"]}


def _request_id(text):
    """The request's id, if the payload is a JSON object with a short string or number id."""
    try:
        doc = json.loads(text)
    except (ValueError, RuntimeError):
        return None
    rid = doc.get("id") if isinstance(doc, dict) else None
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        return None
    return rid[:40] if isinstance(rid, str) else rid
