"""Energy accuracy benchmark (`make bench SUITE=energy`): the node's totals against the simulator's
ground truth, in continuous mode and in sleep mode, each without and with 20 % of the I2C
transactions NACKed. The two runs of a mode go side by side (one per core).

Continuous: tools/host/sim/scenarios/energy.json (UI3 BASIC, UI1 BASIC with export, UI2
STANDARD with export, I3 currents; DRDY wired-OR, General Call), period_s 10; a new load on
one channel every 3 s for CONT_S seconds (sign changes through 0 W for a window), then every
load 0, one more period, Ctrl-C (the ledger is saved), the ledger compared with the truth.
Sleep: the same three meters in mode "sleep" (period_s 120, no network), WAKES wakes with new
loads at every wake, simulated time fast-forwarded through each sleep; the import totals in RTC
memory compared with the truth between the cold boot's primer latch and the last wake's
latch (export is not measured while the node sleeps: page 0 latches import averages only,
and a BASIC module's export needs the RT stream; see lib/rbnode/sleep/sleeper.py).

Figure: the largest error of any channel's import or export over the run, in % of its
truth; and the error of the sum of all energy (bench/README.md).
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import ROOT, hostenv
from tools.host.hostrun import HostNode
from tools.host.nodefiles import read_ledger, rtc_state, totals_by_name
from tools.host.noderun import NodeRun

CONT_S = float(os.getenv("ENERGY_BENCH_S") or 150)
WAKES = int(os.getenv("ENERGY_BENCH_WAKES") or 100)
NACK = 0.2
SCENARIO = os.path.join(ROOT, "tools", "host", "sim", "scenarios", "energy.json")
MODULES = [{"address": "0x50", "name": "ui3"},
           {"address": "0x51", "name": "basic-pv", "bidirectional": True},
           {"address": "0x52", "name": "standard", "bidirectional": True}]
CHANNELS = {"ui3": (3, False), "basic-pv": (1, True), "standard": (2, True)}
LOADS = (0, 60, 450, 1200, 2900)


def scenario(d):
    with open(SCENARIO) as f:
        sc = json.load(f)
    for m in sc["modules"]:
        if m["name"] in CHANNELS:
            m["gc_enable"] = True
    path = os.path.join(d, "scenario.json")
    with open(path, "w") as f:
        json.dump(sc, f)
    return sc, path


def config(**kw):
    cfg = {"log_level": "info", "period_s": 10, "save_s": 30, "watchdog_s": 0, "drdy_pin": 4,
           "modules": MODULES, "i2c": {"retries": 3}}
    cfg.update(kw)
    return cfg


def new_load(rng, bidirectional):
    w = rng.choice(LOADS)
    return -w if bidirectional and rng.random() < 0.5 else w


def errors(got, truth, directions=(0, 1)):
    """(largest |error| % of a channel's import or export, error % of the sum)."""
    worst, g_sum, t_sum = 0.0, 0.0, 0.0
    for name, (k, _bidi) in CHANNELS.items():
        for ch in range(k):
            for i in directions:
                g, t = got[name][ch][i], truth[name][ch][i]
                g_sum += g
                t_sum += t
                if t >= 1.0:          # Wh: below that a channel barely ran
                    worst = max(worst, abs(g - t) / t * 100)
                elif abs(g - t) > 0.01:
                    worst = max(worst, 100.0)
    return worst, abs(g_sum - t_sum) / t_sum * 100


def bench_nacks(ctl):
    return sum(c["nacks"] for c in ctl.counters()["counters"].values())


def continuous(nack, seed, out):
    d = tempfile.mkdtemp(prefix="rbnode-energy-")
    sc, _path = scenario(d)
    rng = random.Random(seed)
    with NodeRun(d, sc, config()) as run:
        run.wait_for("metering: 3 meter(s), General Call latch")
        run.ctl.faults(nack=nack, seed=seed)
        t0 = time.monotonic()
        k = 0
        while time.monotonic() - t0 < CONT_S:
            name = rng.choice(list(CHANNELS))
            ch = rng.randrange(CHANNELS[name][0])
            w = new_load(rng, CHANNELS[name][1])
            run.ctl.set_load(module=name, ch=ch, load=0)    # a sign change passes 0 W
            time.sleep(0.3)
            run.ctl.set_load(module=name, ch=ch, load=w)
            k += 1
            time.sleep(max(0.0, t0 + 3 * k - time.monotonic()))
        run.ctl.faults(nack=0.0)
        for name, (n, _b) in CHANNELS.items():
            for ch in range(n):
                run.ctl.set_load(module=name, ch=ch, load=0)
        n = len(run.lines)
        for name in CHANNELS:          # a period closes with nothing in it
            run.wait_for("%s ok" % name, timeout=25, start=n)
        if run.stop() != 0:
            raise SystemExit("node run failed:\n" + run.output()[-3000:])
        truth = run.ctl.truth()["truth"]
        nacks = bench_nacks(run.ctl)
    out["errors"] = errors(totals_by_name(read_ledger(run.fs)), truth)
    out["nacks"] = nacks


def sleep(nack, seed, out):
    d = tempfile.mkdtemp(prefix="rbnode-energy-sleep-")
    _sc, path = scenario(d)
    bench = hostenv.SimProcess(path)
    ctl = bench.client()
    ctl.faults(nack=nack, seed=seed)
    node = HostNode(d, bench.address, config(mode="sleep", period_s=120, save_s=1900),
                    bench_client=ctl)
    rng = random.Random(seed)
    try:
        base = None
        for i in range(WAKES + 1):
            for name, (n, bidi) in CHANNELS.items():
                for ch in range(n):
                    ctl.set_load(module=name, ch=ch, load=new_load(rng, bidi))
            p = node.start(stdout=subprocess.PIPE)
            text = p.communicate(timeout=60)[0].decode()
            if node.finish() is None or "Traceback" in text:
                raise SystemExit("wake %d failed:\n%s" % (i, text[-3000:]))
            if i == 0:              # the cold boot's primer latch: where counting starts
                base = ctl.truth()
        t = ctl.truth()             # at the last wake's latches
        nacks = bench_nacks(ctl)
    finally:
        node.kill()
        bench.stop()
    got = totals_by_name(rtc_state(node.board))     # the same layout as the ledger
    truth = {name: [[t["at_latch"][name][ch] - base["at_latch"][name][ch], 0.0]
                    for ch in range(n)] for name, (n, _b) in CHANNELS.items()}
    out["errors"] = errors(got, truth, (0,))    # import: export needs the RT stream
    out["nacks"] = nacks


def side_by_side(fn):
    runs = {0.0: {}, NACK: {}}

    def run(nack, seed, r):
        try:
            fn(nack, seed, r)
        except BaseException as e:   # noqa: BLE001  (SystemExit too: reported below)
            r["failed"] = str(e) or repr(e)
    threads = [threading.Thread(target=run, args=(nack, 7 + i, r))
               for i, (nack, r) in enumerate(runs.items())]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for nack, r in runs.items():
        if "errors" not in r:
            raise SystemExit("the %s run (NACK %.0f %%) failed: %s" % (
                fn.__name__, nack * 100, r.get("failed")))
    return runs


def main():
    for mode, fn, what in (("continuous", continuous, "%d s" % CONT_S),
                           ("sleep", sleep, "%d wakes" % WAKES)):
        runs = side_by_side(fn)
        clean, nacked = runs[0.0], runs[NACK]
        print("energy_error_%s_pct: %.4f %% (worst channel, 20 %% NACK, %s)"
              % (mode, nacked["errors"][0], what), flush=True)
        print("energy_error_%s_sum_pct: %.4f %% (all channels, 20 %% NACK)"
              % (mode, nacked["errors"][1]), flush=True)
        print("energy_error_%s_clean_pct: %.4f %% (worst channel, no NACK)"
              % (mode, clean["errors"][0]), flush=True)
        print("energy_nacks_%s: %d NACKs" % (mode, nacked["nacks"]), flush=True)


if __name__ == "__main__":
    sys.exit(main())
