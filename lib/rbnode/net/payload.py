"""The JSON text of what the node publishes about its modules, and the parser of its own
energy message (read back from the broker as a floor, floors.py). Numbers are formatted and
parsed as text from integers: no float (32-bit on the chips) touches a total."""
import json

from ..integrate import kwh, parse_kwh_uwh


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


def energy_json(uid, channels):
    """channels: [[import µWh, export µWh]]."""
    return '{"uid":"%s","imp":[%s],"exp":[%s]}' % (
        uid, ",".join(kwh(c[0]) for c in channels), ",".join(kwh(c[1]) for c in channels))


def _ie(pairs):
    return '{"imp":[%s],"exp":[%s]}' % (",".join(kwh(c[0]) for c in pairs),
                                        ",".join(kwh(c[1]) for c in pairs))


def _w(mw):
    return "null" if mw is None else "%d.%03d" % (mw // 1000, mw % 1000)


def usage_json(view, m, tariff, clock):
    """The day, month and tariff totals and the demand of meter m (view: Ledger.view) as
    JSON text: {"time": "ntp"/"board"/"invalid", "tariff": name or null, "day", "yday",
    "month": {"imp": [kWh], "exp": [kWh]}, "t": {tariff: {"imp", "exp"}}, "demand_w",
    "max_p_w" (the last period), "demand_day_w", "demand_month_w" (the highest)}."""
    pk = view.get("peak") or ((None, None), (None, None))
    parts = ['{"time":"%s","tariff":%s' % (clock, '"%s"' % tariff if tariff else "null")]
    for k, b in (("day", "day"), ("yday", "yday"), ("month", "mon")):
        if b in view:
            parts.append(',"%s":%s' % (k, _ie(view[b])))
    if "tar" in view:
        parts.append(',"t":{%s}' % ",".join('"%s":%s' % (t, _ie(v))
                                             for t, v in view["tar"].items()))
    parts.append(',"demand_w":%s,"max_p_w":%s,"demand_day_w":%s,"demand_month_w":%s}' % (
        _w(m.demand_mw), _num(m.max_p, 1), _w(pk[0][1]), _w(pk[1][1])))
    return "".join(parts)


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
