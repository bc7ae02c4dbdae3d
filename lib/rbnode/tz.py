"""Local time by a POSIX TZ rule, the form ESPHome, ESP-IDF and the C library take
("CET-1CEST,M3.5.0,M10.5.0/3"; every zone of the tz database ends with its own): MicroPython
has no time zone database, and the rule is one line of config.

    z = Zone("CET-1CEST,M3.5.0,M10.5.0/3")   # ValueError naming what is wrong
    z.offset(t)            # seconds east of UTC at t (Unix seconds, UTC)
    z.local(t)             # (year, month, mday, hour, minute, second, weekday 0=Mon, yday)
    z.next_change(t)       # the first instant after t where the offset changes, or None
    z.day_after(t)         # the first instant after t where the local date is later

Integer arithmetic only (a float32 holds Unix seconds to 128 s). A local date can repeat
around a transition at midnight (clocks set back from 00:30 to 23:30): day_after() names the
instant the date first passes the date at t; a caller keeping daily totals rolls over to a
date later than the last it rolled to, never back.
Grammar (POSIX, with RFC 8536's hours beyond 24): std offset [dst [offset]
,start[/time],end[/time]]; names of 3+ ASCII letters or <quoted>; an offset is [+-]hh[:mm[:ss]],
positive west of Greenwich; a date is Mm.w.d (w 5: the last), Jn (1-365, no Feb 29) or n
(0-365); a time defaults to 02:00.
"""

DAY = 86400


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    """(year, month, day) of a day count since 1970-01-01."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


class _Text:
    """The rule being read, with the position for error messages."""

    def __init__(self, s):
        self.s = s
        self.i = 0

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def fail(self, what):
        raise ValueError("time zone %r: %s at character %d" % (self.s, what, self.i + 1))

    def number(self, lo, hi, what):
        j = self.i
        while self.peek().isdigit():
            self.i += 1
        if j == self.i:
            self.fail("%s expected" % what)
        n = int(self.s[j:self.i])
        if not lo <= n <= hi:
            self.i = j
            self.fail("%s %d out of %d..%d" % (what, n, lo, hi))
        return n

    def name(self):
        start = self.i
        if self.peek() == "<":
            j = self.s.find(">", self.i)
            if j < 0:
                self.fail("'<' without '>'")
            n, self.i = self.s[self.i + 1:j], j + 1
        else:
            j = self.i
            while "A" <= self.peek() <= "Z" or "a" <= self.peek() <= "z":
                self.i += 1
            n = self.s[j:self.i]
        if len(n) < 3:
            self.i = start
            self.fail("a zone name of 3 or more letters expected")
        return n

    def hms(self, most, what):
        """[+-]hh[:mm[:ss]] in seconds."""
        sign = 1
        c = self.peek()
        if c and c in "+-":
            sign = -1 if c == "-" else 1
            self.i += 1
        t = self.number(0, most, what + " hours") * 3600
        for unit in (60, 1):
            if self.peek() != ":":
                break
            self.i += 1
            t += self.number(0, 59, what + (" minutes" if unit == 60 else " seconds")) * unit
        return sign * t

    def date(self):
        """(kind, a, b, c): ("M", month, week, weekday), ("J", n) or ("n", n)."""
        if self.peek() == "M":
            self.i += 1
            m = self.number(1, 12, "month")
            if self.peek() != ".":
                self.fail("'.' expected after the month")
            self.i += 1
            w = self.number(1, 5, "week")
            if self.peek() != ".":
                self.fail("'.' expected after the week")
            self.i += 1
            return ("M", m, w, self.number(0, 6, "weekday (0 Sunday)"))
        if self.peek() == "J":
            self.i += 1
            return ("J", self.number(1, 365, "Julian day"))
        return ("n", self.number(0, 365, "day of the year"))

    def change(self):
        """,date[/time]"""
        if self.peek() != ",":
            self.fail("',' and a date expected")
        self.i += 1
        d = self.date()
        t = 7200
        if self.peek() == "/":
            self.i += 1
            t = self.hms(167, "transition")
        return d, t


class Zone:
    def __init__(self, spec):
        if not isinstance(spec, str) or not spec:
            raise ValueError("time zone: a POSIX TZ rule expected, e.g. "
                             "\"CET-1CEST,M3.5.0,M10.5.0/3\", got %r" % (spec,))
        p = _Text(spec)
        self.spec = spec
        self.std_name = p.name()
        self.std = -p.hms(24, "offset")        # seconds east of UTC
        self.dst = self.rule = None
        if p.peek():
            self.dst_name = p.name()
            self.dst = self.std + 3600
            if p.peek() not in ",":
                self.dst = -p.hms(24, "DST offset")
            if not p.peek():
                p.fail("a DST zone needs its rule (,start[/time],end[/time])")
            self.rule = (p.change(), p.change())
            if p.peek():
                p.fail("nothing expected after the rule")
        self._years = {}           # year -> its changes (a few years kept)

    def _day(self, d, y):
        """Days since 1970 of a rule date in year y."""
        if d[0] == "M":
            _, m, w, wd = d
            first = days_from_civil(y, m, 1)
            day = first + (wd - (first + 4) % 7) % 7 + 7 * (w - 1)
            nxt = days_from_civil(y + (m == 12), m % 12 + 1, 1)
            while day >= nxt:
                day -= 7
            return day
        n = d[1]
        jan1 = days_from_civil(y, 1, 1)
        if d[0] == "J":
            return jan1 + n - 1 + (_leap(y) and n >= 60)
        return jan1 + n

    def _changes(self, y):
        """The year's two changes as (utc instant, offset from then on), in time order.
        A change's time is in the local time in force before it."""
        got = self._years.get(y)
        if got is None:
            (d0, t0), (d1, t1) = self.rule
            on = self._day(d0, y) * DAY + t0 - self.std
            off = self._day(d1, y) * DAY + t1 - self.dst
            got = ((on, self.dst), (off, self.std)) if on <= off else \
                ((off, self.std), (on, self.dst))
            if len(self._years) > 3:
                self._years = {}
            self._years[y] = got
        return got

    def offset(self, t):
        if self.rule is None:
            return self.std
        y = civil_from_days((t + self.std) // DAY)[0]
        off = self._changes(y - 1)[1][1]        # in force at the end of last year
        for at, o in self._changes(y):
            if at <= t:
                off = o
        return off

    def next_change(self, t):
        if self.rule is None:
            return None
        y = civil_from_days((t + self.std) // DAY)[0]
        now = self.offset(t)
        for yy in (y, y + 1, y + 2):
            for at, o in self._changes(yy):
                if at > t and o != now:
                    return at
        return None                              # the same offset all year (e.g. J365/25)

    def local(self, t):
        lt = t + self.offset(t)
        days = lt // DAY
        s = lt - days * DAY
        y, m, d = civil_from_days(days)
        return (y, m, d, s // 3600, s // 60 % 60, s % 60, (days + 3) % 7,
                days - days_from_civil(y, 1, 1) + 1)

    def day_after(self, t):
        off = self.offset(t)
        day = (t + off) // DAY + 1                # the local date to reach
        u = day * DAY - off
        c = self.next_change(t)
        if c is None or c > u:
            return u
        if (c + self.offset(c)) // DAY >= day:   # the midnight fell in a gap: the change
            return c
        return day * DAY - self.offset(c)
