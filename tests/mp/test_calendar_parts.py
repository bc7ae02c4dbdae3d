# The clock and the calendar on the unix port (issue 21), with a board and a monotonic count
# the test moves: validity, jumps, the buckets and the next latch across midnight, a tariff
# change and a DST change, periods on the wall clock, a forced tariff.
from mptest import eq, run

from rbnode.calendar import Calendar
from rbnode.clock import Clock
from rbnode.ledger import Ledger

ZONE = "CET-1CEST,M3.5.0,M10.5.0/3"
T0 = 1774746000 * 1000 - 90 * 1000     # 2026-03-29 01:58:30 CET, 90 s before the DST change
TCFG = {"tz": ZONE, "resync_h": 24}


class Board:
    def __init__(self, ms):
        self.ms = ms
        self.set_to = None

    def epoch_ms(self):
        return self.ms

    def set_clock(self, ms):
        self.set_to = ms
        return False


class Mono:
    def __init__(self):
        self.ms = 0

    def __call__(self):
        return self.ms


def test_validity_and_jumps():
    mono = Mono()
    c = Clock(Board(T0), TCFG, [], mono, Board(T0).epoch_ms)
    eq((c.valid, c.state()), (True, "board"))          # no servers, a clock from 2026
    c = Clock(Board(0), TCFG, [], mono, Board(0).epoch_ms)
    eq((c.valid, c.state()), (False, "invalid"))       # a chip's clock after power-on
    b = Board(0)
    c = Clock(b, TCFG, ["127.0.0.1:1"], mono, b.epoch_ms)
    eq(c.valid, False)                                 # servers: valid after a sync only
    calls = []
    c.on_change = lambda: calls.append(c.now_ms())
    c.set(T0, "ntp")
    eq((c.valid, c.state(), calls, b.set_to), (True, "ntp", [T0], T0))
    mono.ms += 5000
    c.set(T0 + 5400, "ntp")                            # 400 ms off: no jump
    eq((len(calls), c.jumps, c.now_ms()), (1, 0, T0 + 5400))
    c.set(T0 + 5400 - 3600000, "ntp")                  # back an hour
    eq((len(calls), c.jumps), (2, 1))
    eq(c.text()[:19], "2026-03-29 00:58:35")


def test_buckets_and_latches_across_midnight_a_tariff_and_dst():
    mono = Mono()
    b = Board(T0 - 7260 * 1000)                        # Sat 23:57:30 CET
    c = Clock(b, TCFG, [], mono, b.epoch_ms)
    led = Ledger("calp")
    led.loaded = True
    led.meter("aa", "m", 80, 1)
    cal = Calendar(c, led, [], 60)
    seen = []
    for _ in range(12):
        cal.update()
        w = cal.wait_ms()
        seen.append((c.text()[11:19], led.tariff_name(), cal.day, w))
        led.add("aa", 0, 1, 0)
        mono.ms += w
    eq(seen[0], ("23:57:30", None, 20540, 30000))     # the end of the minute on the wall
    eq([s[0] for s in seen[1:4]], ["23:58:00", "23:59:00", "00:00:00"])
    eq(seen[3][2], 20541)                              # midnight: the next day
    eq(led.meters["aa"]["yday"], [20540, [[3, 0]]])    # the periods before it
    eq(seen[-1][0], "00:08:00")
    eq(led.meters["aa"]["day"], [20541, [[9, 0]]])


def test_next_boundary_over_the_dst_change_and_a_forced_tariff():
    mono = Mono()
    b = Board(T0)
    c = Clock(b, TCFG, [], mono, b.epoch_ms)
    led = Ledger("calp2")
    led.loaded = True
    led.meter("aa", "m", 80, 1)
    cal = Calendar(c, led, [{"name": "night", "windows": [
        {"days": "sun", "from": "02:30", "to": "03:30"}]}, {"name": "day"}], 3600)
    cal.update()
    # 01:58:30 CET: the window 02:30-03:30 begins when the wall clock jumps 02:00 -> 03:00,
    # which is also the hour on the wall clock (a period end)
    eq((led.tariff, cal.boundary_ms(), cal.wait_ms()), ("day", 90 * 1000, 90 * 1000))
    mono.ms += 90 * 1000
    cal.update()
    eq((led.tariff, c.text()[11:19]), ("night", "03:00:00"))
    eq(cal.boundary_ms(), 1800 * 1000)                 # 03:30 CEST
    cal.forced = "day"
    cal.update()
    eq(led.tariff, "day")
    cal.forced = None
    cal.update()
    eq(led.tariff, "night")
    c.valid = False
    cal.update()
    eq((led.tariff, cal.wait_ms(), cal.boundary_ms()), ("day", None, None))


run(globals())
