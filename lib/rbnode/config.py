"""config.json: defaults, merge and validation (runs on the node and on the host).

    cfg, errors = load("config.json")   # cfg: complete and valid, or None with errors
    check(dict) -> (cfg, errors)

Every problem is one line that names the key, the value and what is allowed. The schema
below is the single source of truth: CONFIG.md documents it and config.example.json shows
every key with its default (tests keep the three in step).
"""
import json

from rbamp import CT_RATINGS

from .jsoncheck import strict_problem
from .log import LEVELS
from .names import display_problem, quoted, size_problem, slug, topic_problem

# A spec is (kind, default, arg):
#   int / num: arg = (lo, hi)      str: any text, arg = max UTF-8 bytes
#   text: a display name (any script; no control or invisible characters), arg = max bytes
#   id: [a-z0-9_-] (it keys topics and unique ids), arg = max length
#   topic: MQTT topic prefix (names.topic_problem), arg = max UTF-8 bytes
#   bool        enum: arg = tuple of choices      pin: GPIO number 0..48 or null
#   addr: I2C address 0x08..0x77 (integer or "0x50")
#   sub: arg = nested schema       list: arg = (item spec, max items)
#   opt_*: like * but null allowed (means "leave as it is" / "auto")
# rated A -> CT model code, from the driver's table (§9.1); code 7 is uncharacterised
CT_AMPS = dict((a, c) for c, a in CT_RATINGS.items() if c != 7)

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
}


class ConfigError(ValueError):
    pass


def defaults(schema=SCHEMA):
    out = {}
    for key, (kind, default, arg) in schema.items():
        out[key] = defaults(arg) if kind == "sub" else (list(default) if isinstance(default, list)
                                                       else default)
    return out


def _type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "text"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


SECRETS = ("password",)    # keys whose values no message shows


def _show(v):
    s = quoted(v) if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _closest(key, allowed):
    """A likely intended key for a typo (same letters, one or two edits), or None."""
    best, score = None, 3
    for a in sorted(allowed):           # one answer on every port (dict order differs)
        d = _distance(key.lower(), a)
        if d < score:
            best, score = a, d
    return best


def _distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a):
        cur = [i + 1]
        for j, cb in enumerate(b):
            cur.append(min(prev[j + 1] + 1, cur[j] + 1, prev[j] + (ca != cb)))
        prev = cur
    return prev[-1]


ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"


def is_id(v):
    return all(c in ID_CHARS for c in v)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return (_is_int(v) or isinstance(v, float)) and v == v and v not in (float("inf"), float("-inf"))


def _value(path, spec, v, errs):
    """Validate one value; returns the normalised value (or None after an error)."""
    kind, default, arg = spec
    if kind.startswith("opt_"):
        if v is None:
            return None
        kind = kind[4:]

    def bad(allowed):
        shown = _show(v)
        if path.rsplit(".", 1)[-1] in SECRETS:    # never in a message, safe_mode.txt, a log
            shown = "(hidden, %d characters)" % len(shown)
        errs.append("%s = %s: %s" % (path, shown, allowed))

    if kind == "int":
        if not _is_int(v) and not (_is_num(v) and isinstance(v, float) and v == int(v)):
            return bad("must be a whole number %d..%d" % arg)
        v = int(v)
        if not arg[0] <= v <= arg[1]:
            return bad("out of range, allowed %d..%d" % arg)
        return v
    if kind == "num":
        if not _is_num(v):
            return bad("must be a number %g..%g" % arg)
        if not arg[0] <= v <= arg[1]:
            return bad("out of range, allowed %g..%g" % arg)
        return float(v)
    if kind == "bool":
        if not isinstance(v, bool):
            return bad("must be true or false")
        return v
    if kind in ("str", "text", "id", "hex", "topic"):
        if not isinstance(v, str):
            return bad("must be text (in double quotes), not %s" % _type_name(v))
        if kind == "text":
            why = display_problem(v, arg)
            return bad(why) if why else v
        if kind == "topic":
            why = topic_problem(v, arg)
            return bad("not usable as an MQTT topic prefix: " + why) if why else v
        why = size_problem(v, arg)
        if why:
            return bad(why)
        if kind == "id" and not is_id(v):
            return bad("use only a-z, 0-9, '-' and '_' (it becomes part of MQTT topics)")
        if kind == "hex":
            v = v.lower()
            if len(v) % 2 or any(c not in "0123456789abcdef" for c in v):
                return bad("must be hexadecimal digits, e.g. \"3a0f...\" (from the module's UID)")
        return v
    if kind == "enum":
        if v not in arg:
            return bad("must be one of %s" % ", ".join(json.dumps(a) for a in arg))
        return v
    if kind == "pin":
        if v is None:
            return None
        if not _is_int(v) or not 0 <= v <= 48:
            return bad("must be a GPIO number 0..48, or null for none")
        return v
    if kind == "addr":
        a = v
        if isinstance(v, str):
            try:
                a = int(v, 16) if v.lower().startswith("0x") else int(v)
            except ValueError:
                a = None
        if not _is_int(a) or not 0x08 <= a <= 0x77:
            return bad("must be an I2C address 0x08..0x77, as a number (80) or text (\"0x50\")")
        return a
    if kind == "ct":
        if not _is_int(v) or v not in CT_AMPS:
            return bad("must be the clamp's rated current in A: %s, or null to keep the module's"
                       % ", ".join(str(k) for k in sorted(CT_AMPS)))
        return v
    if kind == "sub":
        if not isinstance(v, dict):
            return bad("must be an object { ... }, not %s" % _type_name(v))
        return _object(path, arg, v, errs)
    if kind == "list":
        item, most = arg
        if not isinstance(v, list):
            return bad("must be a list [ ... ], not %s" % _type_name(v))
        if len(v) > most:
            return bad("too many entries (%d, at most %d)" % (len(v), most))
        return [_value("%s[%d]" % (path, i), item, x, errs) for i, x in enumerate(v)]
    raise ConfigError("schema: unknown kind %r at %s" % (kind, path))


def _name(key):
    """A key as it can be shown on one line (odd characters quoted, long ones cut)."""
    if key and len(key) <= 40 and all(c.isalpha() or c.isdigit() or c in "_-" for c in key):
        return key
    return _show(key)


def _object(path, schema, obj, errs):
    out = {}
    for key, v in obj.items():
        where = "%s.%s" % (path, _name(key)) if path else _name(key)
        if key not in schema:
            hint = _closest(key, schema)
            errs.append("%s: unknown key%s (allowed here: %s)" % (
                where, " - did you mean %r?" % hint if hint else "", ", ".join(sorted(schema))))
            continue
        out[key] = _value(where, schema[key], v, errs)
    for key, spec in schema.items():
        if key not in out:
            if spec[0] == "sub":
                out[key] = defaults(spec[2])
            elif spec[0] == "addr":
                errs.append("%s: missing, required (the module's I2C address, e.g. \"0x50\")"
                            % ("%s.%s" % (path, key) if path else key))
            else:
                d = spec[1]
                out[key] = list(d) if isinstance(d, list) else d
    return out


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
                            i, _show(m["id"]), derived.get(i, ""), ids[m["id"]]))
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
                note = " (derived from the name %s)" % _show(name)
    if not name:
        m["name"] = m["id"]
    return note


def check(raw, board=None):
    """raw: the parsed JSON; board: whose GPIO rules apply (pins.BOARDS; None: none).
    Returns (config, []) or (None, [messages])."""
    errs = []
    if not isinstance(raw, dict):
        return None, ["the file must hold one JSON object { ... }, not %s" % _type_name(raw)]
    cfg = _object("", SCHEMA, raw, errs)
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
