"""rbnode.tariff on the unix port: the tariff in force and each next change, followed over
weeks around the DST changes of several zones (north and south, a change at midnight, none),
against a minute-by-minute scan of the wall clock as zoneinfo shows it, with a weekly table
the test builds on its own; then schedules that are wrong, each refused naming the fault."""
import calendar
import json
import os
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from mpscript import refusals, run_script
from zonefiles import ZONEINFO, zone_rule

WEEK = 7 * 1440
DAYN = {d: i for i, d in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))}

SCHEDULES = [
    [{"name": "peak", "windows": [{"days": "mon-fri", "from": "07:00", "to": "22:00"}]},
     {"name": "offpeak"}],
    [{"name": "night", "windows": [{"days": "daily", "from": "22:00", "to": "06:00"}]},
     {"name": "weekend", "windows": [{"days": "sat,sun", "from": "06:00", "to": "22:00"}]},
     {"name": "day"}],
    [{"name": "dst hour", "windows": [{"days": "daily", "from": "02:30", "to": "03:00"}]},
     {"name": "rest"}],
    [{"name": "a", "windows": [{"days": "mon", "from": "00:00", "to": "12:00"}]},
     {"name": "b", "windows": [{"days": "mon", "from": "12:00", "to": "24:00"},
                               {"days": "thu-sat", "from": "23:30", "to": "00:30"}]},
     {"name": "c", "windows": [{"days": "wed", "from": "00:00", "to": "01:00"}]},
     {"name": "d"}],
]
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Africa/Cairo",
         "Asia/Kolkata", "UTC"]
RANGES = [((2027, 3, 10), (2027, 5, 3)), ((2027, 10, 1), (2027, 11, 9))]

SCRIPT = """
import json, sys
from rbnode.tz import Zone
from rbnode.tariff import Schedule
cases = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as out:
    for rule, sched, a, b in cases:
        z, s = Zone(rule), Schedule(sched)
        t, chain = a, [[a, s.tariff(z, a)]]
        while True:
            n = s.next_change(z, t)
            if n is None or n[0] >= b:
                break
            chain.append(list(n))
            t = n[0]
        out.write(json.dumps(chain) + "\\n")
print("done")
"""


def _days(text):
    if text == "daily":
        return list(range(7))
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        i, j = DAYN[a], DAYN[b or a]
        out += [(i + k) % 7 for k in range((j - i) % 7 + 1)]
    return out


def _table(sched):
    """The tariff of each minute of the week, window by window (the default elsewhere)."""
    default = [i for i, t in enumerate(sched) if not t.get("windows")][0]
    table = [default] * WEEK
    for i, t in enumerate(sched):
        for w in t.get("windows", ()):
            f = int(w["from"][:2]) * 60 + int(w["from"][3:])
            e = int(w["to"][:2]) * 60 + int(w["to"][3:])
            length = e - f if e > f else e + 1440 - f
            for d in _days(w["days"]):
                for m in range(d * 1440 + f, d * 1440 + f + length):
                    table[m % WEEK] = i
    return table


@pytest.mark.skipif(not os.path.isdir(ZONEINFO), reason="no tz database in " + ZONEINFO)
def test_tariffs_and_their_changes_across_dst_against_the_wall_clock(tmp_path):
    cases, expect = [], []
    for name in ZONES:
        z = ZoneInfo(name)
        for a, b in RANGES:
            ta, tb = calendar.timegm(a + (0, 0, 0)), calendar.timegm(b + (0, 0, 0))
            mows = []
            for u in range(ta, tb, 60):
                d = datetime.fromtimestamp(u, z)
                mows.append(d.weekday() * 1440 + d.hour * 60 + d.minute)
            for sched in SCHEDULES:
                table = _table(sched)
                got = [table[m] for m in mows]
                chain = [[ta, got[0]]] + [[ta + 60 * k, got[k]] for k in range(1, len(got))
                                          if got[k] != got[k - 1]]
                cases.append([zone_rule(name), sched, ta, tb])
                expect.append((name, sched[0]["name"], chain))
    src, dst = tmp_path / "cases.json", tmp_path / "out.json"
    src.write_text(json.dumps(cases))
    p = run_script(tmp_path, "tariff_check.py", SCRIPT, [src, dst], timeout=300)
    assert p.returncode == 0 and "done" in p.stdout, p.stdout[-3000:]
    got = [json.loads(ln) for ln in dst.read_text().splitlines()]
    changes = 0
    for (name, first, chain), g in zip(expect, got):
        changes += len(chain) - 1
        if g != chain:
            diff = [(x, y) for x, y in zip(g, chain) if x != y][:3]
            raise AssertionError("%s, schedule %r: %d changes, the wall clock's %d; first "
                                 "differences (node, wall clock): %r" % (
                                     name, first, len(g) - 1, len(chain) - 1, diff))
    assert changes > 2000, changes


BAD = [
    ([], "a list of 1 to 4 tariffs expected"),
    ([{"name": "a"}] * 5, "a list of 1 to 4 tariffs expected"),
    ([{"name": "a"}, {"name": "A"}], "tariffs[1]: name 'A' is used twice"),
    ([{"name": ""}], "tariffs[0]: name: 1 to 24 characters expected"),
    ([{"name": "a", "price": 3}], "unknown key 'price'"),
    ([{"name": "a"}, {"name": "b"}], "these have none: a, b"),
    ([{"name": "a", "windows": [{"days": "daily", "from": "00:00", "to": "12:00"}]}],
     "there is none"),
    ([{"name": "a", "windows": [{"days": "weekdays", "from": "07:00", "to": "22:00"}]},
      {"name": "b"}], "days 'weekdays': use mon tue"),
    ([{"name": "a", "windows": [{"days": "mon", "from": "7:00", "to": "22:00"}]},
      {"name": "b"}], "from '7:00': a time of day \"HH:MM\" expected"),
    ([{"name": "a", "windows": [{"days": "mon", "from": "07:00", "to": "24:01"}]},
      {"name": "b"}], "to '24:01'"),
    ([{"name": "a", "windows": [{"days": "mon", "from": "24:00", "to": "01:00"}]},
      {"name": "b"}], "from '24:00'"),
    ([{"name": "a", "windows": [{"days": "mon", "from": "07:00"}]}, {"name": "b"}],
     "windows[0]: an object with days, from and to expected"),
    ([{"name": "peak", "windows": [{"days": "mon-fri", "from": "07:00", "to": "22:00"}]},
      {"name": "shoulder", "windows": [{"days": "fri", "from": "21:00", "to": "23:00"}]},
      {"name": "off"}],
     "windows overlap: peak fri 07:00-22:00 and shoulder fri 21:00-23:00"),
    ([{"name": "late", "windows": [{"days": "sun", "from": "23:00", "to": "02:00"}]},
      {"name": "early", "windows": [{"days": "mon", "from": "01:00", "to": "03:00"}]},
      {"name": "off"}], "windows overlap: late sun 23:00-02:00 and early mon 01:00-03:00"),
    ("peak", "a list of 1 to 4 tariffs expected"),
]

def test_a_wrong_schedule_is_refused_naming_the_fault(tmp_path):
    lines = refusals(tmp_path, "rbnode.tariff:Schedule", [s for s, _ in BAD])
    for (sched, why), line in zip(BAD, lines):
        assert line.startswith("REFUSED") and why in line, (sched, line)
