"""Power-loss campaign (issue 4, 'done when'): the node process is killed at random
instants, 2 x 100 times, while it measures, latches and saves. After every restart the
ledger must load, no total may have decreased, the energy lost in a cycle must stay within
what the save interval allows, and nothing may be counted twice.

The loss allowed in a cycle is the start-up (until the primer latch, whose instant the
bench's truth at that latch gives) and the time since the newest save (its file's mtime).
The saves must keep their cadence: the newest within save_s of the kill, the first within
save_s of the primer latch. Start-up is measured, not assumed: a loaded CI machine may take
over a second to boot the node from source. Lateness is measured too: a probe (the same
MicroPython binary, an asyncio loop doing a little work every 20 ms) reports how far the
machine held back a process like the node, and a cycle's cadence and loss bounds grow by
the stall the probe saw in that cycle (on an idle machine: next to nothing).

Two boards run side by side (each with its own bench) to use both cores. Loads are
constant, so each channel's energy per second is known exactly from the simulator's truth.
"""
import random
import subprocess
import threading
import time

import pytest

from nodeharness import read_ledger
from tools.host import hostenv
from tools.host.hostrun import HostNode

KILLS = 100          # per board (the issue asks for >= 200 in all)
SAVE_S = 2
WINDOW_S = 0.25     # one RT window and a read
LATE_S = 0.5         # a save's lateness on a loaded machine (asyncio.sleep wakes late)
SCENARIO = {
    "freq": 50000, "faults": {"nack": 0.05, "seed": 3},
    "modules": [
        {"name": "house", "variant": "UI2", "address": 80, "tier": 0, "ct": [3, 4],
         "uid": "f1000000000000000000cafe", "drdy_pin": 4,
         "channels": [{"load": 1800}, {"load": -2400}]},
        {"name": "heat", "variant": "UI1", "address": 81, "tier": 1, "ct": [3],
         "uid": "f2000000000000000000cafe", "drdy_pin": 4, "channels": [{"load": 900}]},
    ]}
CONFIG = {"log_level": "warning", "period_s": 10, "save_s": SAVE_S, "watchdog_s": 0,
          "drdy_pin": 4, "modules": [{"address": 80, "name": "house", "bidirectional": True},
                                     {"address": 81, "name": "heat"}]}
KEYS = [("f1000000000000000000cafe", 0, "house", 0), ("f1000000000000000000cafe", 1, "house", 1),
        ("f2000000000000000000cafe", 0, "heat", 0)]
WATTS = {("house", 0): (1800, 0), ("house", 1): (0, 2400), ("heat", 0): (900, 0)}


PROBE = """
import time, asyncio
async def main():
    while True:
        t = time.ticks_us()
        for i in range(300):          # a little work, as the node does between its sleeps
            i * i
        await asyncio.sleep_ms(20)
        print(time.time_ns() // 1000000, time.ticks_diff(time.ticks_us(), t))
asyncio.run(main())
"""


class StallProbe:
    """How far the machine held back a process like the node: an asyncio loop (the same
    MicroPython binary) doing a little work and sleeping 20 ms, each tick timed. A tick's
    stall is what it took beyond the fastest tick seen; stall(t0, t1) sums them."""

    def __init__(self):
        self.proc = subprocess.Popen([hostenv.micropython(), "-c", PROBE],
                                     stdout=subprocess.PIPE, text=True)
        self.ticks = []                    # (wall s, µs the tick took)
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            ms, us = line.split()
            with self.lock:
                self.ticks.append((int(ms) / 1000, int(us)))

    def stall(self, t0, t1):
        """Seconds the probe was held back between wall-clock instants t0 and t1."""
        time.sleep(0.05)                   # its last ticks
        with self.lock:
            fastest = min(us for _t, us in self.ticks)
            return sum(us - fastest for t, us in self.ticks if t0 <= t <= t1 + 0.05) / 1e6

    def stop(self):
        hostenv.stop_process(self.proc)


def campaign(tmp, seed, results, probe):
    import json
    import os
    path = os.path.join(tmp, "scenario.json")
    with open(path, "w") as f:
        json.dump(SCENARIO, f)
    bench = hostenv.SimProcess(path)
    ctl = bench.client()
    node = HostNode(tmp, bench.address, CONFIG, bench_client=ctl)
    rng = random.Random(seed)
    prev, problems, cycles = None, [], []
    try:
        for i in range(KILLS):
            t_start = time.monotonic()
            wall0 = time.time()
            truth0 = ctl.truth()["truth"]
            node.power_on()                         # a power cut: RTC memory is lost too
            node.start(stdout=open(os.path.join(tmp, "node.log"), "a"))
            life = rng.uniform(0.5, 3.5)
            time.sleep(life)
            node.kill()
            wall1 = time.time()
            truth1 = ctl.truth()["truth"]
            led = read_ledger(node.fs)
            cycles.append(life)
            stall = probe.stall(wall0, wall1)
            late_s = LATE_S + stall
            results.setdefault("stall_s", []).append(stall)
            # start-up: from the truth read to the primer latch (the simulator's truth at it)
            at_latch = ctl.truth()["at_latch"]
            boot_s = {}
            for name, w in (("house", WATTS["house", 0][0]), ("heat", WATTS["heat", 0][0])):
                wh = at_latch[name][0] - truth0[name][0][0] if at_latch[name] else -1
                boot_s[name] = wh * 3600 / w if wh >= 0 else life
            results.setdefault("boot_s", []).append(max(boot_s.values()))
            # the save cadence: within save_s of the primer latch, then every save_s
            saves = (led["seq"] if led else 0) - (prev[0] if prev else 0)
            since_save = wall1 - os.stat(os.path.join(
                node.fs, "energy.%d" % (led["seq"] % 2))).st_mtime if saves > 0 else None
            if saves > 0 and since_save > SAVE_S + late_s:
                problems.append("cycle %d: the last save was %.1f s before the kill"
                                % (i, since_save))
            if saves <= 0 and life - max(boot_s.values()) > SAVE_S + late_s:
                problems.append("cycle %d: no save in %.1f s after the primer latch"
                                % (i, life - max(boot_s.values())))
            if led is None:
                if prev is not None:
                    problems.append("cycle %d: no valid ledger slot after a save existed" % i)
                continue
            now = {(k, ch): tuple(led["meters"][k]["ch"][ch]) for k, ch, _n, _c in KEYS
                   if k in led["meters"]}
            if prev is not None:
                if led["seq"] < prev[0]:
                    problems.append("cycle %d: ledger went back from save #%d to #%d"
                                    % (i, prev[0], led["seq"]))
                for k, ch, name, c in KEYS:
                    imp0, exp0 = prev[1].get((k, ch), (0, 0))
                    imp1, exp1 = now.get((k, ch), (0, 0))
                    if imp1 < imp0 or exp1 < exp0:
                        problems.append("cycle %d: %s ch%d decreased" % (i, name, c))
                    # energy booked in this cycle vs. what really flowed meanwhile
                    for d_got, t0v, t1v, w in (
                            (imp1 - imp0, truth0[name][c][0], truth1[name][c][0], WATTS[name, c][0]),
                            (exp1 - exp0, truth0[name][c][1], truth1[name][c][1], WATTS[name, c][1])):
                        flowed = (t1v - t0v) * 1e6            # µWh
                        # the first RT window a node books may have begun up to one window
                        # before this cycle's truth was read (it was not booked before)
                        if d_got > flowed + w * WINDOW_S * 1e6 / 3600 + 50:
                            problems.append("cycle %d: %s ch%d booked %d µWh, only %d flowed "
                                            "(counted twice)" % (i, name, c, d_got, flowed))
                        # lost: the start-up and what flowed since the newest save (+ one
                        # window booked at neither end, + the stall: the saved state was that
                        # much older); without a save, all of it
                        allowed = (w * (boot_s[name] + since_save + WINDOW_S + stall) * 1e6 / 3600
                                   if saves > 0 else flowed)
                        if flowed - d_got > allowed + 50:
                            problems.append("cycle %d (%.1f s): %s ch%d lost %d of %d µWh, "
                                            "more than the start-up (%.2f s), the stall (%.2f s) "
                                            "and the time since the last save (%.2f s)"
                                            % (i, life, name, c, flowed - d_got, flowed,
                                               boot_s[name], stall, since_save))
            prev = (led["seq"], now)
            results.setdefault("cycle_s", []).append(time.monotonic() - t_start)
        final_truth = ctl.truth()["truth"]
        results["final"] = (prev, final_truth)
    finally:
        node.kill()
        bench.stop()
    results["problems"] = problems
    results["cycles"] = cycles


@pytest.mark.slow                  # 3.5 min: make test-slow (CI runs it)
@pytest.mark.xdist_group("cpu")    # both cores: never beside the energy accuracy test
def test_power_loss_campaign(tmp_path):
    runs = [{}, {}]
    threads = []
    probe = StallProbe()
    try:
        for i, r in enumerate(runs):
            d = tmp_path / ("board%d" % i)
            d.mkdir()
            threads.append(threading.Thread(target=campaign, args=(str(d), 100 + i, r, probe)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        probe.stop()
    stalls = runs[0].get("stall_s", []) + runs[1].get("stall_s", [])
    print("stall per cycle: max %.2f s, total %.1f s" % (max(stalls or [0]), sum(stalls)))
    for i, r in enumerate(runs):
        assert not r.get("problems"), "board %d:\n%s" % (i, "\n".join(r["problems"][:20]))
        assert len(r["cycles"]) == KILLS
        (seq, totals), truth = r["final"]
        # each cycle checks the save cadence; here: saving was not mostly skipped
        assert seq > KILLS // 10, "the ledger was saved only %d times" % seq
        # over the whole campaign: never more than the truth (no double count)
        for k, ch, name, c in KEYS:
            imp, exp = totals[(k, ch)]
            assert imp <= truth[name][c][0] * 1e6 * 1.001 + 100, (name, c, imp, truth)
            assert exp <= truth[name][c][1] * 1e6 * 1.001 + 100, (name, c, exp, truth)
            w_imp, w_exp = WATTS[name, c]
            assert (imp if w_imp else exp) > 0
