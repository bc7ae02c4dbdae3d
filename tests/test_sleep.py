"""Sleep mode (issue 6): the battery logger on the unix port, bench time fast-forwarded through
each deep sleep. 100 cycles with changing loads, a stale latch, a module reboot while the node
sleeps and RTC memory corrupted: every channel within 0.1 % of the bench's truth, less only
the energy nobody could measure (before the rebooted module's boot) or that the flash ledger
had not kept yet (the periods lost with RTC memory), and totals that never decrease.
"""
import binascii
import json
import os
import random
import subprocess

from nodeharness import base_config, read_ledger, scenario

from tools import hostenv
from tools.hostrun import HostNode

PERIOD_S = 120
SAVE_S = 1800                    # the flash ledger every 15 wakes
CYCLES = 100
MODULES = [{"address": "0x50", "name": "ui3"}, {"address": "0x51", "name": "basic-pv"},
           {"address": "0x52", "name": "standard"}]
CHANNELS = {"ui3": 3, "basic-pv": 1, "standard": 2}
STALE_AT, REBOOT_AT, CORRUPT_AT = 20, 40, 61


def rtc_state(node):
    """The sleep state in the board's RTC memory, checked here (not by lib/rbnode)."""
    p = os.path.join(node.board, "rtc_memory")
    if not os.path.exists(p):
        return None
    data = open(p, "rb").read()
    assert data[:4] == b"RBS\x01", data[:8]
    body, _, crc = data[4:].decode().rstrip("\n").rpartition("\n")
    assert int(crc, 16) == binascii.crc32(body.encode())
    return json.loads(body)


def totals(doc):
    return {m["name"]: [c[0] / 1e6 for c in m["ch"]] for m in doc["meters"].values()}


def import_truth(ctl):
    return {n: [ch[0] for ch in chans] for n, chans in ctl.truth()["truth"].items()}


def test_hundred_sleep_cycles_count_every_wh(tmp_path):
    path = os.path.join(str(tmp_path), "scenario.json")
    with open(path, "w") as f:
        json.dump(scenario("energy_bench.json"), f)
    bench = hostenv.BenchProcess(path)
    ctl = bench.client()
    cfg = base_config(mode="sleep", period_s=PERIOD_S, save_s=SAVE_S, modules=MODULES)
    node = HostNode(str(tmp_path), bench.address, cfg, bench_client=ctl)
    rng = random.Random(6)
    lost = {n: [0.0] * k for n, k in CHANNELS.items()}
    cycle = [0]

    def sleep(ms):
        """The bench's world goes on while the node sleeps; faults land mid-sleep."""
        if cycle[0] == REBOOT_AT:
            ctl.fast_forward(ms=ms // 2)
            t = import_truth(ctl)["ui3"]      # measured by nobody: before its boot
            for ch in range(3):
                lost["ui3"][ch] += t[ch] - at_latch["ui3"][ch]
            ctl.module_fault(module="ui3", action="reboot")
            ctl.fast_forward(ms=ms - ms // 2)
        else:
            ctl.fast_forward(ms=ms)
    node.during_sleep = sleep
    logs, seen, at_latch, base = [], {}, None, None
    try:
        for cycle[0] in range(CYCLES):
            for name, k in CHANNELS.items():          # new loads for the coming sleep
                for ch in range(k):
                    ctl.set_load(module=name, ch=ch, load=rng.choice((0, 60, 450, 1200, 2900)))
            if cycle[0] == STALE_AT:
                ctl.module_fault(module="standard", action="empty_latch", value=1)
            if cycle[0] == CORRUPT_AT:
                # a brown-out: RTC memory garbage. The flash ledger is older: what was booked
                # since its last save is lost (known here), never counted twice.
                doc, led = rtc_state(node), read_ledger(node.fs)
                for m in doc["meters"].values():
                    flash = led["meters"][next(k for k, v in led["meters"].items()
                                                if v["name"] == m["name"])]["ch"]
                    for ch, c in enumerate(m["ch"]):
                        lost[m["name"]][ch] += (c[0] - flash[ch][0]) / 1e6
                with open(os.path.join(node.board, "rtc_memory"), "wb") as f:
                    f.write(os.urandom(300))
            p = node.start(stdout=subprocess.PIPE)
            out, _ = p.communicate(timeout=60)
            logs.append(out.decode())
            at_latch = import_truth(ctl)               # the wake's latch was moments ago
            if cycle[0] == 0:                          # the cold boot's primer: the start
                base = at_latch
            doc = rtc_state(node)
            assert doc is not None, logs[-1]
            for name, vals in totals(doc).items():     # never decreasing
                for ch, v in enumerate(vals):
                    assert v >= seen.get((name, ch), 0), (cycle[0], name, ch, logs[-1])
                    seen[name, ch] = v
            assert node.finish() is not None, logs[-1]
            assert "Traceback" not in logs[-1], logs[-1]
    finally:
        node.kill()
        truth = import_truth(ctl)
        bench.stop()
    text = "".join(logs)
    assert "standard: empty latch" in text
    assert "ui3: module rebooted" in text
    assert "sleep state corrupted" in text or "no sleep state" in text, text[-2000:]
    assert text.count("primer latch, anchor set") == 3          # only at the cold boot
    got = totals(rtc_state(node))
    bad, report = [], []
    for name, k in CHANNELS.items():
        for ch in range(k):
            # the truth ran on through the last sleep: up to the last wake's latch
            want = at_latch[name][ch] - base[name][ch] - lost[name][ch]
            g = got[name][ch]
            report.append("%s ch%d: node %.3f Wh, truth %.3f - lost %.3f" % (
                name, ch, g, at_latch[name][ch], lost[name][ch]))
            if abs(g - want) > max(1e-3 * want, 0.01):
                bad.append(report[-1])
    print("\n".join(report))
    assert not bad, "\n".join(bad)
    assert truth["ui3"][0] >= at_latch["ui3"][0]
