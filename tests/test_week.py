"""A simulated week of the battery logger (issue 21, 'done when'): the real node on the unix
port in sleep mode, the simulator's world clock fast-forwarded through each deep sleep, from
Tuesday 21:00 to the next Monday noon in Berlin's zone across the DST change of Sunday
25 October 2026 (a 25-hour day), two tariffs (peak on weekdays 07:00-22:00, off the rest), a
wake every 55 min (period_s 3300: no boundary is on its grid) and one at each boundary.

The load is constant, so the simulator's truth tells when each latch happened (truth = P x
time). Checked: every boundary latch within one RT window (200 ms) after its boundary
(later only when the wake itself was late, as the node reports); every
whole day's total (yesterday, at the first wake of the next) within 0.1 % of the truth
between its midnight latches, and within two windows' energy of P x 24 h (25 h on the DST
day); the tariffs' totals against P x their hours; the lifetime the sum of the tariff
totals exactly and this month's total the lifetime, at every wake.
"""
import calendar
import json
import os
import re
import subprocess

from nodeharness import base_config, rtc_state, scenario
from tools.host import hostenv
from tools.host.hostrun import HostNode

ZONE = "CET-1CEST,M3.5.0,M10.5.0/3"
START = calendar.timegm((2026, 10, 20, 19, 0, 0))       # Tue 21:00 CEST
END = calendar.timegm((2026, 10, 26, 11, 0, 0))         # Mon 12:00 CET
DST_END = calendar.timegm((2026, 10, 25, 1, 0, 0))      # 03:00 CEST -> 02:00 CET
P = [1000.0, 250.0]                                     # W on ui3's channels 0 and 1
WINDOW_S = 0.2
PERIOD_S = 3300                                          # 55 min: off every boundary's grid


def utc(day, hour):
    """Unix time of a local hour in October 2026 (none of ours is in the repeated hour)."""
    t = calendar.timegm((2026, 10, day, hour, 0, 0))
    return t - 7200 if t - 7200 < DST_END else t - 3600


def boundaries():
    """(Unix s, what): local midnights; 07:00 and 22:00 on weekdays."""
    out = []
    for day in range(20, 27):
        weekday = calendar.weekday(2026, 10, day) < 5
        for hour, what in ((0, "midnight"), (7, "peak"), (22, "off")):
            if what == "midnight" or weekday:
                t = utc(day, hour)
                if START < t < END:
                    out.append((t, what))
    return out


def test_a_simulated_week_of_tariffs_and_days(tmp_path):
    path = os.path.join(str(tmp_path), "scenario.json")
    sc = scenario("energy.json")
    sc["modules"] = [m for m in sc["modules"] if m["name"] == "ui3"]   # the model's time: one
    with open(path, "w") as f:
        json.dump(sc, f)
    bench = hostenv.SimProcess(path)
    wakes = []            # (node time of the latch, truth Wh per channel at it, meter state)
    try:
        ctl = bench.client()
        for m in ctl.modules()["modules"]:
            for ch in range(m["channels"]):
                ctl.set_load(module=m["name"], ch=ch, load=0)
        for ch, w in enumerate(P):
            ctl.set_load(module="ui3", ch=ch, load=w)
        cfg = base_config(mode="sleep", period_s=PERIOD_S, save_s=86400,
                          modules=[{"address": "0x50", "name": "ui3"}],
                          time={"tz": ZONE, "ntp": []}, sleep={"awake_s": 5},
                          tariffs=[{"name": "peak", "windows": [
                              {"days": "mon-fri", "from": "07:00", "to": "22:00"}]},
                              {"name": "off"}])
        node = HostNode(str(tmp_path), bench.address, cfg, bench_client=ctl)
        # the board's RTC reads START now (the host board keeps it as an offset to the
        # simulator's world clock); from here the truth of ch0 is P x the time since
        tr = ctl.truth()
        t = ctl.time()
        offset_us = START * 10**6 - t["epoch_us"]
        with open(os.path.join(node.board, "rtc_offset"), "w") as f:
            f.write(str(offset_us))
        t0 = (t["epoch_us"] + offset_us - (t["t_us"] - tr["t_us"])) / 1e6
        truth0 = tr["truth"]["ui3"][0][0]

        def node_time(truth_wh):
            return t0 + (truth_wh - truth0) * 3600 / P[0]
        now = START
        while now < END:
            out = node.start(stdout=subprocess.PIPE).communicate(timeout=60)[0].decode()
            assert "Traceback" not in out, out
            assert node.finish() is not None, out
            lat = ctl.truth()["at_latch"]["ui3"]
            now = node_time(lat[0])
            (m,) = rtc_state(node.board)["meters"].values()
            wakes.append((now, lat, m, out))
            for ch in range(2):                     # the sum, exactly, at every wake
                for j in (0, 1):
                    assert sum(v[ch][j] for v in m["tar"].values()) == m["ch"][ch][j], m
            assert m["mon"][1] == m["ch"], m         # all of it in October
    finally:
        bench.stop()
    stamps = [w[0] for w in wakes]
    # every boundary latch within one RT window after its boundary, never before it; later
    # only when the wake itself came late (a loaded host: the boot took longer than the
    # node's lead), which the node reports with the delay
    at, late = {}, []
    for b, what in boundaries():
        i = min(range(len(stamps)), key=lambda k: abs(stamps[k] - b))
        d = stamps[i] - b
        said = re.search(r"boundary latch (\d+) ms late", wakes[i][3])
        assert -0.005 <= d <= WINDOW_S or (said and abs(int(said.group(1)) / 1000 - d) < 0.1), \
            (what, b, d, wakes[i][3])
        late += [d] if d > WINDOW_S else []
        at[b] = i
    print("%d wakes, %d boundaries, %d latched late: %s" % (len(wakes), len(at), len(late), late))
    # a wake per period and one per boundary, no more
    assert len(wakes) <= (END - START) // PERIOD_S + 2 + len(at), len(wakes)
    # every whole day: yesterday's total at the first wake of the next day
    mids = sorted(b for b, what in boundaries() if what == "midnight")
    assert len(mids) == 6
    for a, b in zip(mids, mids[1:]):
        hours = (b - a) / 3600
        assert hours == (25 if a < DST_END < b else 24), hours
        i, j = at[a], at[b]
        yday = wakes[j][2]["yday"]
        assert yday[0] == wakes[j][2]["day"][0] - 1 == wakes[i][2]["day"][0], (yday, a)
        for ch in range(2):
            truth = (wakes[j][1][ch] - wakes[i][1][ch]) * 1e6
            got = yday[1][ch][0]
            assert abs(got - truth) <= 1e-3 * truth, (a, ch, got, truth)
            if stamps[i] - a <= WINDOW_S and stamps[j] - b <= WINDOW_S:
                assert abs(got - P[ch] * hours * 1e6) <= P[ch] * 2 * WINDOW_S / 3600 * 1e6 + \
                    1e-4 * truth, (a, ch, got, hours)
    # the tariffs: P x the time between the latches that opened and closed each peak window
    # (Tue 21-22 from the primer, Wed-Fri 07-22, Mon from 07 to the last latch)
    m = wakes[-1][2]
    lat = {what + str(b): stamps[at[b]] for b, what in boundaries()}
    ons = [stamps[0]] + [lat["peak%d" % utc(d, 7)] for d in (21, 22, 23, 26)]
    offs = [lat["off%d" % utc(d, 22)] for d in (20, 21, 22, 23)] + [stamps[-1]]
    peak_s = sum(b - a for a, b in zip(ons, offs))
    if not late:
        assert abs(peak_s - (1 + 3 * 15 + (stamps[-1] - utc(26, 7)) / 3600) * 3600) < 9 * WINDOW_S
    for ch in range(2):
        peak = m["tar"]["peak"][ch][0]
        assert abs(peak - P[ch] * peak_s / 3600 * 1e6) <= 1e-4 * peak, (ch, m["tar"], peak_s)
        # the lifetime: the truth from the cold boot's primer latch to the last latch
        life = (wakes[-1][1][ch] - wakes[0][1][ch]) * 1e6
        assert abs(m["ch"][ch][0] - life) <= 1e-4 * life, (ch, m["ch"], life)
