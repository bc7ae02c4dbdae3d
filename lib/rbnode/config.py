"""config.json: defaults, merge and validation (runs on the node and on the host).

    cfg, errors = load("config.json")   # cfg: complete and valid, or None with errors
    check(dict) -> (cfg, errors)

Every problem is one line that names the key, the value and what is allowed. The schema
below is the single source of truth: CONFIG.md documents it and config.example.json shows
every key with its default (tests keep the three in step). The checker of each kind of
value: schema.py.
"""
import json

from .jsoncheck import strict_problem
from .log import LEVELS
from .names import slug
from .schema import check_object, defaults as _defaults, is_id, show, type_name

MODULE = {
    "address": ("addr", None, None),
    "id": ("id", "", 24),
    "name": ("text", "", 48),
    "uid": ("opt_hex", None, 24),
    "channels": ("list", [], (("text", "", 32), 3)),
    "sensor_class": ("opt_enum", None, ("sct013",)),
    "ct": ("list", [], (("opt_ct", None, None), 3)),
    "tier": ("enum", "auto", ("auto", "basic", "standard")),
    "bidirectional": ("bool", False, None),
    "variant": ("opt_enum", None, ("UI1", "UI2", "UI3", "I1", "I2", "I3")),
    "drdy_pin": ("pin", None, None),
}

WINDOW = {
    "days": ("str", "daily", 32),
    "from": ("str", "00:00", 5),
    "to": ("str", "24:00", 5),
}
TARIFF = {
    "name": ("id", "", 16),
    "windows": ("list", [], (("sub", None, WINDOW), 8)),
}

SCHEMA = {
    "node": ("sub", None, {
        "id": ("id", "", 32),
        "name": ("text", "rbAmp node", 64),
    }),
    "mode": ("enum", "continuous", ("continuous", "sleep")),
    "log_level": ("enum", "info", LEVELS),
    "i2c": ("sub", None, {
        "id": ("int", 0, (0, 1)),
        "sda": ("pin", None, None),
        "scl": ("pin", None, None),
        "freq": ("int", 50000, (10000, 400000)),
        "retries": ("int", 3, (1, 5)),
    }),
    "drdy_pin": ("pin", None, None),
    "modules": ("list", [], (("sub", None, MODULE), 16)),
    "period_s": ("int", 60, (10, 3600)),
    "save_s": ("int", 300, (2, 86400)),
    "events": ("sub", None, {
        "threshold_w": ("num", 100.0, (1.0, 30000.0)),
        "threshold_pct": ("num", 20.0, (0.0, 1000.0)),
        "settle_windows": ("int", 3, (1, 50)),
    }),
    "wifi": ("sub", None, {
        "ssid": ("str", "", 32),
        "password": ("str", "", 64),
    }),
    "mqtt": ("sub", None, {
        "host": ("str", "", 128),
        "port": ("int", 1883, (1, 65535)),
        "user": ("str", "", 64),
        "password": ("str", "", 128),
        "client_id": ("str", "", 64),
        "tls": ("bool", False, None),
        "ca_file": ("str", "", 64),
        "keepalive": ("int", 60, (10, 3600)),
        "base_topic": ("topic", "rbnode", 64),
        "discovery": ("bool", True, None),
        "discovery_prefix": ("topic", "homeassistant", 64),
        "state_s": ("int", 10, (1, 3600)),
        "delta_w": ("num", 50.0, (0.0, 100000.0)),
        "health_s": ("int", 60, (10, 3600)),
        "allow_remote_config": ("bool", False, None),
        "allow_totals": ("bool", False, None),
    }),
    "link": ("sub", None, {
        "backoff_min_s": ("int", 2, (1, 600)),
        "backoff_max_s": ("int", 300, (1, 3600)),
        "max_attempts": ("int", 0, (0, 100000)),
        "max_offline_s": ("int", 3600, (0, 604800)),
        "action": ("enum", "reset", ("reset", "none", "sleep")),
    }),
    "sleep": ("sub", None, {
        "awake_s": ("int", 20, (3, 300)),
        "backlog": ("int", 500, (0, 5000)),
        "wake_pin": ("pin", None, None),
        "wake_w": ("opt_int", None, (1, 65534)),
    }),
    "watchdog_s": ("int", 30, (0, 3600)),
    "time": ("sub", None, {
        "tz": ("str", "UTC0", 64),
        "ntp": ("list", ["pool.ntp.org"], (("str", "", 64), 3)),
        "resync_h": ("int", 24, (1, 168)),
    }),
    "tariffs": ("list", [], (("sub", None, TARIFF), 4)),
    "ota": ("sub", None, {
        "enabled": ("bool", False, None),
        "key": ("str", "", 700),
        "ca_file": ("str", "", 64),
        "confirm_s": ("int", 600, (30, 86400)),
        "max_boots": ("int", 3, (1, 10)),
    }),
}


def defaults():
    """config.json as it is with nothing in it."""
    return _defaults(SCHEMA)


def _cross_checks(cfg, errs):
    mods = cfg["modules"]
    seen = {}
    derived = {}
    for i, m in enumerate(mods):
        if not isinstance(m, dict) or m.get("address") is None:
            continue
        where = "modules[%d]" % i
        a = m["address"]
        if a in seen:
            errs.append("%s.address = \"0x%02x\": already used by modules[%d]" % (where, a, seen[a]))
        seen[a] = i
        derived[i] = _module_id(m)
        chans = m["channels"] or []
        if m["variant"] is not None and len(chans) > (ord(m["variant"][-1]) - 48):
            errs.append("%s.channels: %d names for a %s module (%s channels)" % (
                where, len(chans), m["variant"], m["variant"][-1]))
        if m["ct"] and m["sensor_class"] is None:
            m["sensor_class"] = "sct013"   # a CT model needs the class first (§9.1)
    ids = {}
    for i, m in enumerate(mods):
        if not isinstance(m, dict) or not m.get("id"):
            continue
        if m["id"] in ids:
            errs.append("modules[%d].id = %s%s: used more than once (modules[%d] has it; ids "
                        "key the MQTT topics: give one of them an \"id\")" % (
                            i, show(m["id"]), derived.get(i, ""), ids[m["id"]]))
        ids[m["id"]] = i
    pins = [m["drdy_pin"] for m in mods if isinstance(m, dict) and m.get("drdy_pin") is not None]
    i2c = cfg["i2c"]
    if i2c["sda"] is not None and i2c["sda"] == i2c["scl"]:
        errs.append("i2c.scl = %d: the same GPIO as i2c.sda (the bus needs two lines)"
                    % i2c["scl"])
    for k in ("sda", "scl"):
        p = i2c[k]
        if p is not None and (p == cfg["drdy_pin"] or p in pins):
            errs.append("i2c.%s = %d: the same GPIO is also a DRDY pin" % (k, p))
    link = cfg["link"]
    if link["backoff_min_s"] > link["backoff_max_s"]:
        errs.append("link.backoff_min_s = %d: larger than link.backoff_max_s (%d)"
                    % (link["backoff_min_s"], link["backoff_max_s"]))
    sl = cfg["sleep"]
    if cfg["mode"] == "sleep" and sl["awake_s"] >= cfg["period_s"]:
        errs.append("sleep.awake_s = %d: must be shorter than period_s = %d (a wake must end "
                    "before the next one is due)" % (sl["awake_s"], cfg["period_s"]))
    if (sl["wake_pin"] is None) != (sl["wake_w"] is None):
        errs.append("sleep.%s: set sleep.wake_pin and sleep.wake_w together (the early wake "
                    "needs both the line and the threshold), or neither"
                    % ("wake_w" if sl["wake_w"] is None else "wake_pin"))
    if sl["wake_pin"] is not None and sl["wake_pin"] in (i2c["sda"], i2c["scl"]):
        errs.append("sleep.wake_pin = %d: the same GPIO is an I2C pin" % sl["wake_pin"])
    if link["action"] == "sleep" and cfg["mode"] != "sleep":
        errs.append("link.action = \"sleep\": only in mode \"sleep\" (use \"reset\" or \"none\")")
    if cfg["mqtt"]["host"] and not cfg["wifi"]["ssid"]:
        errs.append("wifi.ssid: missing, required when mqtt.host is set")
    _time_checks(cfg, errs)
    o = cfg["ota"]
    if o["enabled"]:
        if not o["key"]:
            errs.append("ota.key: missing, required when ota.enabled is true (the public key "
                        "`make ota-key` prints)")
        else:
            from .ota.rsa import key_bytes
            try:
                key_bytes(o["key"])
            except ValueError as e:
                errs.append(str(e))
        if not cfg["mqtt"]["host"]:
            errs.append("ota.enabled: updates are commanded over MQTT: set mqtt.host")
    if o["enabled"] and o["confirm_s"] < 2 * cfg["period_s"]:
        errs.append("ota.confirm_s = %d: at least twice period_s (%d s), or a new version is "
                    "rolled back before its first period closes" % (o["confirm_s"],
                                                                     cfg["period_s"]))


def _time_checks(cfg, errs):
    """The time zone rule and the tariffs, by the code that will use them (tz.py,
    tariff.py): what it refuses is named here, before the node runs."""
    from .tz import Zone
    t = cfg["time"]
    try:
        Zone(t["tz"])
    except ValueError as e:
        errs.append("time.tz = %s: %s (a POSIX TZ rule such as \"CET-1CEST,M3.5.0,M10.5.0/3\", "
                    "see CONFIG.md)" % (show(t["tz"]), e))
    for i, s in enumerate(t["ntp"]):
        host, _, port = s.rpartition(":") if ":" in s else (s, "", "123")
        if not host or " " in s or not port.isdigit() or not 1 <= int(port) <= 65535:
            errs.append("time.ntp[%d] = %s: a server name or address, optionally with "
                        ":port (\"pool.ntp.org\", \"192.168.1.1:123\")" % (i, show(s)))
    tars = cfg["tariffs"]
    if not tars:
        return
    for i, x in enumerate(tars):
        if not x["name"]:
            errs.append("tariffs[%d].name: missing, required (a-z 0-9 - _, e.g. \"peak\": it "
                        "becomes part of the Home Assistant entity ids)" % i)
    if errs:
        return
    from .tariff import Schedule
    try:
        Schedule(tars)
    except ValueError as e:
        errs.append(str(e))


def _module_id(m):
    """A module without an id gets one: its name when that is an id already (so configs
    from before ids keep their topics), else a slug of the name ("Küche" -> "kuche"), else
    m<address>. A name shown in Home Assistant defaults to the id."""
    name, note = m["name"], ""
    if not m["id"]:
        if name and is_id(name) and len(name) <= 24:
            m["id"] = name
        else:
            m["id"] = slug(name, "-") or "m%02x" % m["address"]
            if name:
                note = " (derived from the name %s)" % show(name)
    if not name:
        m["name"] = m["id"]
    return note


def check(raw, board=None):
    """raw: the parsed JSON; board: whose GPIO rules apply (pins.BOARDS; None: none).
    Returns (config, []) or (None, [messages])."""
    errs = []
    if not isinstance(raw, dict):
        return None, ["the file must hold one JSON object { ... }, not %s" % type_name(raw)]
    cfg = check_object("", SCHEMA, raw, errs)
    if not errs:
        _cross_checks(cfg, errs)
    if not errs and board is not None:
        from . import pins      # only when asked: the node drops it after its boot check
        errs = pins.problems(cfg, board)
    return (None, errs) if errs else (cfg, [])


def parse(text, board=None):
    """JSON text -> (config, errors). A syntax error names the line and column; a BOM, a
    trailing comma or a key given twice is refused here and in the checker alike."""
    why = strict_problem(text)
    if why:
        return None, ["not valid JSON: %s" % why]
    try:
        raw = json.loads(text)
    except ValueError as e:
        return None, ["not valid JSON: %s%s" % (e, _where(text, e))]
    return check(raw, board)


def _where(text, e):
    """CPython names line/column; MicroPython does not, so point at the usual suspects."""
    if "line" in str(e):
        return ""
    hints = []
    if text.count("{") != text.count("}"):
        hints.append("unbalanced { }")
    if text.count("[") != text.count("]"):
        hints.append("unbalanced [ ]")
    for i, line in enumerate(text.split("\n")):
        s = line.strip()
        if s.startswith("//") or s.startswith("#"):
            hints.append("line %d: comments are not allowed in JSON" % (i + 1))
            break
        if "'" in s and '"' not in s:
            hints.append("line %d: use double quotes" % (i + 1))
            break
    for i, line in enumerate(text.split("\n")):
        s = line.rstrip()
        nxt = text.split("\n")[i + 1].strip() if i + 1 < len(text.split("\n")) else ""
        if s.endswith(",") and nxt[:1] in ("}", "]"):
            hints.append("line %d: trailing comma" % (i + 1))
            break
    return " (%s)" % "; ".join(hints) if hints else ""


def load(path="config.json", board=None):
    """Read and check path (board: as in check()). Returns (config, errors): config None
    when there are errors."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, ["%s: file not found (copy config.example.json to %s and edit it)"
                      % (path, path)]
    except (UnicodeError, ValueError):
        return None, ["%s: not a text file" % path]
    cfg, errs = parse(text, board)
    return cfg, ["%s: %s" % (path, e) for e in errs]
