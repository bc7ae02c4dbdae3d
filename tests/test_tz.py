"""rbnode.tz on the unix port against the tz database as CPython's zoneinfo reads it: every zone
file of this machine's database, its own POSIX rule (the footer of the file), checked at every
offset change it makes over 19 years from 2026 (or from its last explicit transition), a second
before and at each, and at instants spread over those years: the offset, the local time, the
next change, the next local date. Then rules that are wrong, each refused naming the fault."""
import calendar
import json
import os
import random
from datetime import datetime, timezone

import pytest

from mpscript import refusals, run_script
from zonefiles import ZONEINFO, read_tzif

START, END = calendar.timegm((2026, 1, 1, 0, 0, 0)), calendar.timegm((2045, 1, 1, 0, 0, 0))

SCRIPT = """
import json, sys
from rbnode.tz import Zone
n = 0
with open(sys.argv[2], "w") as out:
    for spec, ts in json.load(open(sys.argv[1])):
        z = Zone(spec)
        for t in ts:
            out.write(json.dumps([z.offset(t), z.local(t), z.next_change(t), z.day_after(t)]))
            out.write("\\n")
            n += 1
print("done", n)
"""


def _zones():
    from zoneinfo import ZoneInfo, available_timezones
    for name in sorted(available_timezones()):
        p = os.path.join(ZONEINFO, name)
        if name.startswith(("posix/", "right/")) or not os.path.isfile(p):
            continue
        got = read_tzif(p)
        if got:
            yield name, ZoneInfo(name), got[0], got[1]


def _off(z, t):
    return int(datetime.fromtimestamp(t, z).utcoffset().total_seconds())


def _changes(z, a, b):
    """The instants in [a, b) at which zoneinfo's offset changes (day steps, then bisection)."""
    out = []
    t, o = a, _off(z, a)
    while t < b:
        u = min(t + 86400, b)
        ou = _off(z, u)
        if ou != o:
            lo, hi = t, u                       # o at lo, not at hi
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _off(z, mid) == o else (lo, mid)
            out.append(hi)
            o = ou
        t = u
    return out


def _date(z, t):
    return datetime.fromtimestamp(t, z).date()


@pytest.mark.skipif(not os.path.isdir(ZONEINFO), reason="no tz database in " + ZONEINFO)
def test_every_zone_of_the_tz_database_by_its_own_rule(tmp_path):
    rnd = random.Random(2026)
    cases, expect, zones = [], [], 0
    for name, z, rule, last in _zones():
        a = max(START, (last or 0) + 1)        # Morocco's explicit changes go to 2087
        b = max(END, a + END - START)
        ch = _changes(z, a, b)
        ts = [c + d for c in ch for d in (-1, 0)] + [rnd.randrange(a, b - 86400 * 400)
                                                     for _ in range(12)]
        cases.append([rule, ts])
        for t in ts:
            dt = datetime.fromtimestamp(t, z)
            nxt = [c for c in ch if c > t]
            expect.append((name, rule, t, b, _off(z, t), list(dt.timetuple()[:6]) + [
                dt.weekday(), dt.timetuple().tm_yday], nxt[0] if nxt else "none"))
        zones += 1
    assert zones > 300, zones                  # the database is there, whole
    src, dst = tmp_path / "cases.json", tmp_path / "out.json"
    src.write_text(json.dumps(cases))
    p = run_script(tmp_path, "tz_check.py", SCRIPT, [src, dst], timeout=300)
    assert p.returncode == 0 and "done" in p.stdout, p.stdout[-3000:]
    got = [json.loads(ln) for ln in dst.read_text().splitlines()]
    assert len(got) == len(expect)
    bad = []
    for (name, rule, t, b, off, loc, nxt), (g_off, g_loc, g_nxt, g_day) in zip(expect, got):
        if nxt == "none" and (g_nxt is None or g_nxt >= b):
            nxt = g_nxt                        # none within the years zoneinfo was asked
        if (g_off, g_loc, g_nxt) != (off, loc, nxt):
            bad.append("%s %r at %d: offset %r local %r next %r, zoneinfo %r %r %r" % (
                name, rule, t, g_off, g_loc, g_nxt, off, loc, nxt))
    assert not bad, "%d of %d wrong:\n%s" % (len(bad), len(expect), "\n".join(bad[:20]))
    # the next local date: later than at t from that instant on, and not a second earlier
    from zoneinfo import ZoneInfo
    for (name, rule, t, *_), (_o, _l, _n, day) in zip(expect, got):
        z = ZoneInfo(name)
        assert _date(z, day) > _date(z, t) >= _date(z, day - 1), (name, rule, t, day)
        assert day - t <= 26 * 3600, (name, rule, t, day)


BAD = [
    ("", "a POSIX TZ rule expected"),
    ("CET", "offset hours expected at character 4"),
    ("CE-1", "a zone name of 3 or more letters expected at character 1"),
    ("CET-25", "offset hours 25 out of 0..24"),
    ("CET-1:60", "offset minutes 60 out of 0..59"),
    ("CET-1CEST", "a DST zone needs its rule"),
    ("CET-1CEST,M3.5.0", "',' and a date expected at character 17"),
    ("CET-1CEST,M13.5.0,M10.5.0", "month 13 out of 1..12"),
    ("CET-1CEST,M3.6.0,M10.5.0", "week 6 out of 1..5"),
    ("CET-1CEST,M3.5.7,M10.5.0", "weekday (0 Sunday) 7 out of 0..6"),
    ("CET-1CEST,M3.5,M10.5.0", "'.' expected after the week"),
    ("CET-1CEST,J0,J300", "Julian day 0 out of 1..365"),
    ("CET-1CEST,M3.5.0,M10.5.0/3x", "nothing expected after the rule at character 27"),
    ("CET-1CEST,M3.5.0,M10.5.0/168", "transition hours 168 out of 0..167"),
    ("<+03-3", "'<' without '>'"),
    ("Mitteleuropäische-1", "offset hours expected"),
    ("Europe/Berlin", "offset hours expected at character 7"),
]

def test_a_wrong_rule_is_refused_naming_the_fault(tmp_path):
    lines = refusals(tmp_path, "rbnode.tz:Zone", [s for s, _ in BAD] + [None, 5])
    for (spec, why), line in zip(BAD, lines):
        assert line.startswith("REFUSED") and why in line, (spec, line)
        if spec:
            assert "time zone '%s" % spec[:5] in line, (spec, line)    # it names the rule
    assert all("a POSIX TZ rule expected" in ln for ln in lines[-2:]), lines[-2:]


def test_utc_and_fixed_offsets():
    # the simplest rules, in CPython: UTC+0 and a half-hour zone, no changes
    import importlib
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "lib"))
    tz = importlib.import_module("rbnode.tz")
    t = calendar.timegm((2026, 12, 31, 23, 59, 59))
    u = tz.Zone("UTC0")
    assert (u.offset(t), u.local(t)[:6], u.next_change(t)) == (0, (2026, 12, 31, 23, 59, 59), None)
    assert u.day_after(t) == t + 1
    ind = tz.Zone("IST-5:30")
    assert ind.offset(t) == 19800 and ind.local(t)[:4] == (2027, 1, 1, 5)
    assert ind.day_after(t) == calendar.timegm((2027, 1, 1, 18, 30, 0))
    assert datetime(2027, 1, 1, tzinfo=timezone.utc).weekday() == ind.local(t)[6]
