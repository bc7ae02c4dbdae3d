"""The checker behind config.py: a schema of (kind, default, arg) specs, each value checked
against its kind, normalised, and every problem one line naming the key, the value and what
is allowed (a secret's value never shown; a likely intended key for a typo).
"""
import json

from rbamp import CT_CODES

from .names import display_problem, quoted, size_problem, topic_problem

# A spec is (kind, default, arg):
#   int / num: arg = (lo, hi)      str: any text, arg = max UTF-8 bytes
#   text: a display name (any script; no control or invisible characters), arg = max bytes
#   id: [a-z0-9_-] (it keys topics and unique ids), arg = max length
#   topic: MQTT topic prefix (names.topic_problem), arg = max UTF-8 bytes
#   bool        enum: arg = tuple of choices      pin: GPIO number 0..48 or null
#   addr: I2C address 0x08..0x77 (integer or "0x50")
#   sub: arg = nested schema       list: arg = (item spec, max items)
#   opt_*: like * but null allowed (means "leave as it is" / "auto")


class ConfigError(ValueError):
    pass


def defaults(schema):
    """The complete default document of a schema."""
    out = {}
    for key, (kind, default, arg) in schema.items():
        out[key] = defaults(arg) if kind == "sub" else (list(default) if isinstance(default, list)
                                                       else default)
    return out


def type_name(v):
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


def show(v):
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
        shown = show(v)
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
            return bad("must be text (in double quotes), not %s" % type_name(v))
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
        if not _is_int(v) or v not in CT_CODES:
            return bad("must be the clamp's rated current in A: %s, or null to keep the module's"
                       % ", ".join(str(k) for k in sorted(CT_CODES)))
        return v
    if kind == "sub":
        if not isinstance(v, dict):
            return bad("must be an object { ... }, not %s" % type_name(v))
        return check_object(path, arg, v, errs)
    if kind == "list":
        item, most = arg
        if not isinstance(v, list):
            return bad("must be a list [ ... ], not %s" % type_name(v))
        if len(v) > most:
            return bad("too many entries (%d, at most %d)" % (len(v), most))
        return [_value("%s[%d]" % (path, i), item, x, errs) for i, x in enumerate(v)]
    raise ConfigError("schema: unknown kind %r at %s" % (kind, path))


def _name(key):
    """A key as it can be shown on one line (odd characters quoted, long ones cut)."""
    if key and len(key) <= 40 and all(c.isalpha() or c.isdigit() or c in "_-" for c in key):
        return key
    return show(key)


def check_object(path, schema, obj, errs):
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
