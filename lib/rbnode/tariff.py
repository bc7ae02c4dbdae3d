"""Tariffs by weekly windows of local wall time (issue 21): which tariff is in force at an
instant, and the next instant it changes, across DST changes (tz.py).

    s = Schedule([{"name": "peak", "windows": [{"days": "mon-fri", "from": "07:00",
                                                "to": "22:00"}]},
                  {"name": "offpeak"}])          # ValueError naming every problem
    s.names                                      # ["peak", "offpeak"]
    i = s.tariff(zone, t)                        # index into names, t in Unix seconds
    u, j = s.next_change(zone, t)                # the first instant after t with another
                                                 # tariff, and that tariff (None: only one)

Up to 4 tariffs; exactly one has no windows: the default, in force outside every window.
A window runs from "HH:MM" to "HH:MM" on each of its days ("mon-fri", "sat,sun", "fri-mon",
"daily"); a "to" at or before "from" ends on the next day ("22:00" to "06:00"); "24:00" is
the end of a day. Windows must not overlap. Local wall time decides: in a spring-forward gap
the change falls on the DST change itself; in the repeated hour of a fall-back a boundary in
it happens twice, as the clock on the wall shows it.
"""

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK = 7 * 1440              # minutes
MAX_TARIFFS = 4


def _days(text, where):
    if not isinstance(text, str):
        raise ValueError("%s: days must be text such as \"mon-fri\" or \"sat,sun\"" % where)
    t = text.strip().lower()
    if t in ("daily", "all"):
        return list(range(7))
    out = []
    for part in t.split(","):
        ends = [p.strip()[:3] for p in part.split("-")]
        if len(ends) > 2 or any(e not in DAYS for e in ends):
            raise ValueError("%s: days %r: use mon tue wed thu fri sat sun, ranges such as "
                             "mon-fri, commas, or daily" % (where, text))
        a, b = DAYS.index(ends[0]), DAYS.index(ends[-1])
        while True:
            if a not in out:
                out.append(a)
            if a == b:
                break
            a = (a + 1) % 7
    return out


def _minute(text, where, what, end=False):
    ok = isinstance(text, str) and len(text) == 5 and text[2] == ":" and \
        text[:2].isdigit() and text[3:].isdigit()
    m = int(text[:2]) * 60 + int(text[3:]) if ok else -1
    if not ok or int(text[3:]) > 59 or not 0 <= m <= (1440 if end else 1439):
        raise ValueError("%s: %s %r: a time of day \"HH:MM\" expected (00:00 to %s)" % (
            where, what, text, "24:00" if end else "23:59"))
    return m


class Schedule:
    def __init__(self, tariffs):
        if not isinstance(tariffs, list) or not 1 <= len(tariffs) <= MAX_TARIFFS:
            raise ValueError("tariffs: a list of 1 to %d tariffs expected" % MAX_TARIFFS)
        self.names = []
        spans = []                      # (start, end, tariff, label), minutes of the week
        default = []
        for i, t in enumerate(tariffs):
            where = "tariffs[%d]" % i
            if not isinstance(t, dict):
                raise ValueError("%s: an object with a name expected" % where)
            name = t.get("name")
            if not isinstance(name, str) or not name.strip() or len(name) > 24:
                raise ValueError("%s: name: 1 to 24 characters expected" % where)
            if name.strip().lower() in [n.lower() for n in self.names]:
                raise ValueError("%s: name %r is used twice" % (where, name))
            for k in t:
                if k not in ("name", "windows"):
                    raise ValueError("%s (%s): unknown key %r (name, windows)" % (where, name, k))
            self.names.append(name.strip())
            wins = t.get("windows")
            if wins is None or wins == []:
                default.append(name)
                continue
            if not isinstance(wins, list):
                raise ValueError("%s (%s): windows must be a list" % (where, name))
            for j, w in enumerate(wins):
                wh = "%s (%s) windows[%d]" % (where, name, j)
                if not isinstance(w, dict) or sorted(w) != ["days", "from", "to"]:
                    raise ValueError("%s: an object with days, from and to expected" % wh)
                a = _minute(w["from"], wh, "from")
                b = _minute(w["to"], wh, "to", end=True)
                if b <= a:
                    b += 1440           # ends on the next day
                for d in _days(w["days"], wh):
                    label = "%s %s %s-%s" % (name, DAYS[d], w["from"], w["to"])
                    s, e = d * 1440 + a, d * 1440 + b
                    if e > WEEK:        # sunday night into monday
                        spans.append((s, WEEK, i, label))
                        spans.append((0, e - WEEK, i, label))
                    else:
                        spans.append((s, e, i, label))
        if len(default) != 1:
            raise ValueError("tariffs: exactly one tariff without windows is the default for "
                             "the rest of the week; %s" % (
                                 "there is none" if not default else
                                 "these have none: " + ", ".join(default)))
        spans.sort()
        for x, y in zip(spans, spans[1:]):
            if y[0] < x[1]:
                raise ValueError("tariffs: windows overlap: %s and %s" % (x[3], y[3]))
        self.default = self.names.index(default[0].strip())
        # the week as segments (start minute, tariff), adjacent equal tariffs merged
        starts, ids, at = [], [], 0
        for s, e, i, _ in spans:
            if s > at:
                self._add(starts, ids, at, self.default)
            self._add(starts, ids, s, i)
            at = e
        if at < WEEK or not starts:
            self._add(starts, ids, at if starts else 0, self.default)
        self._starts, self._ids = starts, ids

    @staticmethod
    def _add(starts, ids, at, i):
        if ids and ids[-1] == i:
            return
        starts.append(at)
        ids.append(i)

    def _at(self, mow):
        i = len(self._starts) - 1
        while self._starts[i] > mow:
            i -= 1
        return self._ids[i]

    def _local(self, zone, t):
        lt = zone.local(t)              # (y, m, d, H, M, S, weekday 0=Mon, yday)
        return lt[6] * 86400 + lt[3] * 3600 + lt[4] * 60 + lt[5]

    def tariff(self, zone, t):
        return self._at(self._local(zone, t) // 60)

    def next_change(self, zone, t):
        if len(set(self._ids)) < 2:
            return None
        now = self.tariff(zone, t)
        for _ in range(8):              # each turn passes a boundary or a DST change
            ls = self._local(zone, t)
            wall = self._at(ls // 60)   # the tariff by the wall clock at t
            nxt = None
            for s in self._starts + [x + WEEK for x in self._starts]:
                if s * 60 > ls and self._at(s % WEEK) != wall:
                    nxt = s * 60
                    break
            u = t + nxt - ls            # at the wall-clock offset of t
            c = zone.next_change(t)
            if c is not None and c <= u:
                j = self.tariff(zone, c)
                if j != now:
                    return c, j         # the change jumped over (or onto) a boundary
                t = c
                continue
            return u, self.tariff(zone, u)
        raise ValueError("tariffs: no change found")   # not reached: 8 turns pass a week
