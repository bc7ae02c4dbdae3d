# The ledger's tariff, day and month totals on the unix port (issue 21): the lifetime total
# is the sum of the tariff totals exactly, after any sequence of additions, tariff changes,
# day roll-overs, saves with provisional energy, restarts and slots with wrong buckets; no
# saved total ever decreases; a seeded total goes to the default tariff and to no day.
# timeout: 300
import json
import os

from mptest import eq, run

from rbnode.buckets import merge
from rbnode.ledger import Ledger, crc32

P = "bk"
T = ["peak", "off", "shoulder"]


class Rng:
    def __init__(self, seed):
        self.x = seed * 2654435761 % 2**32 or 1

    def next(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x

    def randint(self, a, b):
        return a + self.next() % (b - a + 1)


def _clean():
    for f in os.listdir("."):
        if f.startswith(P + "."):
            os.remove(f)


def _ledger():
    led = Ledger(P)
    led.load()
    led.use_tariffs(T, "off")
    led.use_days()
    return led


def _sums_hold(led):
    for key, m in led.meters.items():
        for ch, c in enumerate(m["ch"]):
            for j in (0, 1):
                s = sum(v[ch][j] for v in m["tar"].values())
                if s != c[j]:
                    raise AssertionError("%s ch%d: tariffs %d, lifetime %d" % (key, ch, s, c[j]))
                for b in ("day", "yday", "mon"):
                    if m.get(b) and m[b][1][ch][j] > c[j]:
                        raise AssertionError("%s %s above the lifetime" % (key, b))


def _flat(led):
    """Every total: (key, tariff or "life", ch) -> [imp, exp]."""
    out = {}
    for key, m in led.meters.items():
        for ch, c in enumerate(m["ch"]):
            out[(key, "life", ch)] = c
            for t, v in m["tar"].items():
                out[(key, t, ch)] = v[ch]
    return out


def test_random_walk_keeps_the_sum_exact_and_no_saved_total_decreases():
    _clean()
    rng = Rng(21)
    led = _ledger()
    led.meter("aa", "mains", 80, 1)
    led.meter("bb", "pv", 81, 2)
    day, month = 20000, 657
    led.roll(day, month)
    booked = {"aa": [[0, 0]], "bb": [[0, 0], [0, 0]]}
    last = {}
    for step in range(400):
        k = rng.randint(0, 9)
        if k <= 4:
            key = "aa" if rng.randint(0, 1) else "bb"
            ch = rng.randint(0, len(booked[key]) - 1)
            i, e = rng.randint(0, 10**7), rng.randint(0, 10**5)
            led.add(key, ch, i, e)
            booked[key][ch][0] += i
            booked[key][ch][1] += e
        elif k == 5:
            led.tariff = T[rng.randint(0, 2)]
        elif k == 6:
            day += rng.randint(0, 2)
            month += rng.randint(0, 1) * (rng.randint(0, 3) == 0)
            led.roll(day, month)
        elif k == 7:
            prov = {"aa": [[rng.randint(0, 5000), 0]],
                    "bb": [[rng.randint(0, 5000), rng.randint(0, 50)], [0, 0]]}
            led.save(prov)
            _sums_hold(led)
        else:
            led.save()
            # a restart: what the flash holds, checked and loaded
            again = Ledger(P)
            eq(again.load() > 0, True)
            eq(again.problems, [])
            again.use_tariffs(T, "off")
            again.use_days()
            _sums_hold(again)
            now = _flat(again)
            for kk, v in now.items():
                old = last.get(kk)
                if old and (v[0] < old[0] or v[1] < old[1]):
                    raise AssertionError("%s went down: %s -> %s" % (kk, old, v))
            last = now
            # the restarted ledger goes on (the provisional energy saved is in it now)
            led = again
            led.tariff = T[rng.randint(0, 2)]
            led.roll(day, month)
            booked = {kk: [c[:] for c in m["ch"]] for kk, m in led.meters.items()}
        _sums_hold(led)
    for key, m in led.meters.items():
        eq([c[:] for c in m["ch"]], booked[key])


def test_history_goes_to_the_default_tariff_and_a_seed_to_no_day():
    _clean()
    led = Ledger(P)
    led.load()
    led.meter("aa", "mains", 80, 2)
    led.add("aa", 0, 5000, 7)
    led.save()
    led = _ledger()                         # tariffs configured later
    m = led.meters["aa"]
    eq(m["tar"], {"off": [[5000, 7], [0, 0]], "peak": [[0, 0], [0, 0]],
                  "shoulder": [[0, 0], [0, 0]]})
    led.roll(100, 3)
    led.tariff = "peak"
    led.add("aa", 1, 300, 0)
    led.add("aa", 0, 10**6, 0, seed=True)   # set_total: history, not today's energy
    eq(m["tar"]["peak"], [[0, 0], [300, 0]])
    eq(m["tar"]["off"], [[1005000, 7], [0, 0]])
    eq(m["day"], [100, [[0, 0], [300, 0]]])
    eq(m["mon"], [3, [[0, 0], [300, 0]]])
    _sums_hold(led)
    led.save()
    eq(Ledger(P).load() > 0, True)


def test_days_roll_forwards_only_and_undated_energy_is_today():
    _clean()
    led = _ledger()
    led.meter("aa", "mains", 80, 1)
    led.add("aa", 0, 40, 0)                 # before the time was valid
    eq(led.meters["aa"]["day"], [None, [[40, 0]]])
    led.roll(500, 16)                       # valid: that energy was measured today
    eq(led.meters["aa"]["day"], [500, [[40, 0]]])
    led.add("aa", 0, 10, 0)
    led.roll(501, 16)                       # midnight
    eq((led.meters["aa"]["yday"], led.meters["aa"]["day"]), ([500, [[50, 0]]], [501, [[0, 0]]]))
    led.add("aa", 0, 3, 0)
    led.roll(500, 16)                       # the clock set back an hour over midnight
    eq(led.meters["aa"]["day"], [501, [[3, 0]]])
    led.roll(504, 17)                       # off for two days, a new month
    eq((led.meters["aa"]["yday"], led.meters["aa"]["day"], led.meters["aa"]["mon"]),
       ([503, [[0, 0]]], [504, [[0, 0]]], [17, [[0, 0]]]))
    led.demand("aa", 2500000)
    led.demand("aa", 900000)
    eq(led.meters["aa"]["peak"], [[504, 2500000], [17, 2500000]])
    led.roll(505, 17)
    eq(led.meters["aa"]["peak"], [[505, 0], [17, 2500000]])
    v = led.view("aa", {"aa": [[7, 0]]}["aa"])
    eq((v["day"], v["yday"], v["mon"], v["tar"]["off"]),
       ([[7, 0]], [[0, 0]], [[7, 0]], [[60, 0]]))


def _slot(doc):
    body = json.dumps(doc).encode()
    return body + b"\n%08x\n" % (crc32(body) & 0xFFFFFFFF)


def test_a_slot_with_wrong_buckets_is_rejected_naming_it_and_the_other_used():
    good = {"name": "m", "addr": 80, "ch": [[10, 2]], "tar": {"peak": [[4, 2]], "off": [[6, 0]]},
            "day": [9, [[3, 0]]], "mon": [1, [[10, 2]]], "peak": [[9, 5000], [1, 5000]]}
    cases = [
        ({"tar": {"peak": [[4, 2]], "off": [[7, 0]]}}, "do not add up to the lifetime"),
        ({"tar": {"peak": [[4, 2]]}}, "do not add up"),
        ({"tar": {"peak": [[4, 2], [0, 0]], "off": [[6, 0]]}}, "bad tariff totals"),
        ({"tar": {"peak": [[4, -1]], "off": [[6, 3]]}}, "bad tariff totals"),
        ({"day": [9, [[11, 0]]]}, "bad day totals"),
        ({"mon": ["x", [[1, 0]]]}, "bad mon totals"),
        ({"yday": [8]}, "bad yday totals"),
        ({"peak": [[9, -5], [1, 0]]}, "bad peak demand"),
        ({"peak": "high"}, "bad peak demand"),
    ]
    for change, why in cases:
        _clean()
        with open(P + ".0", "wb") as f:
            f.write(_slot({"v": 1, "seq": 3, "t": 0, "meters": {"aa": good}}))
        bad = dict(good)
        bad.update(change)
        with open(P + ".1", "wb") as f:
            f.write(_slot({"v": 1, "seq": 4, "t": 0, "meters": {"aa": bad}}))
        led = Ledger(P)
        eq(led.load(), 3)
        if len(led.problems) != 1 or why not in led.problems[0]:
            raise AssertionError("%s: %s" % (change, led.problems))


def test_merge_of_two_states_keeps_the_sum():
    a = {"name": "m", "addr": 80, "ch": [[10, 0]], "tar": {"p": [[4, 0]], "o": [[6, 0]]},
         "day": [9, [[3, 0]]]}
    b = {"name": "m", "addr": 80, "ch": [[9, 0], [5, 5]], "tar": {"p": [[5, 0], [5, 5]],
                                                                  "o": [[4, 0], [0, 0]]},
         "day": [10, [[1, 0], [0, 0]]]}
    merge(a, b)
    eq(a["tar"], {"p": [[5, 0], [5, 5]], "o": [[6, 0], [0, 0]]})
    eq(a["ch"], [[11, 0], [5, 5]])
    eq(a["day"], [10, [[1, 0], [0, 0]]])


def test_a_state_without_tariff_totals_merged_keeps_the_sum():
    """An RTC state written before tariffs were configured (or by the firmware before) is
    newer than the flash ledger: its lead goes to the default tariff."""
    mine = {"name": "m", "addr": 80, "ch": [[10, 1]], "tar": {"p": [[4, 0]], "o": [[6, 1]]}}
    merge(mine, {"name": "m", "addr": 80, "ch": [[15, 1]]}, "o")
    eq((mine["ch"], mine["tar"]), ([[15, 1]], {"p": [[4, 0]], "o": [[11, 1]]}))


def test_tariffs_removed_from_the_config_keep_their_totals():
    _clean()
    led = _ledger()
    led.meter("aa", "mains", 80, 1)
    led.tariff = "peak"
    led.add("aa", 0, 500, 0)
    led.save()
    led = Ledger(P)                          # tariffs gone from config.json
    led.load()
    from rbnode.calendar import Calendar

    class NoClock:
        valid = False
    Calendar(NoClock(), led, [], 60)
    eq(led.tariff_name(), None)
    led.add("aa", 0, 30, 0)
    eq(led.meters["aa"]["tar"]["peak"], [[500, 0]])
    eq(led.meters["aa"]["tar"]["(none)"], [[30, 0]])
    _sums_hold_any(led)
    led.save()
    again = Ledger(P)
    again.load()
    eq(again.problems, [])
    eq(again.meters["aa"]["ch"], [[530, 0]])
    eq("tar" in led.view("aa"), False)       # nothing published per tariff


def _sums_hold_any(led):
    for m in led.meters.values():
        for ch, c in enumerate(m["ch"]):
            eq(sum(v[ch][0] for v in m["tar"].values()), c[0])


run(globals())
