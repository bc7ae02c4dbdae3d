"""Sleep mode (issue 6): the battery logger on the unix port, simulated time fast-forwarded through
each deep sleep, publishing to a real mosquitto through mqtt_as at every wake. 80 cycles with
changing loads, a stale latch, a module reboot while the node sleeps, RTC memory corrupted and
runs of wakes without WiFi: every channel within 0.1 % of the simulator's truth, less only the
energy nobody could measure (before the rebooted module's boot) or that the flash ledger had
not kept yet (the periods lost with RTC memory), totals that never decrease, and every period
record on the broker once, in order, the ones of the offline wakes after the network came back.
"""
import json
import os
import random
import re
import subprocess

import pytest
from tools.host.mqttrec import Recorder
from nodeharness import base_config, read_ledger, scenario
from nodeharness import rtc_state as _rtc_state

from tools.host import hostenv
from tools.host.broker import Broker
from tools.host.hostrun import HostNode

PERIOD_S = 120
SAVE_S = 1900                    # the flash ledger every 16 wakes (1920 s; 1800 s is 15)
CYCLES = 80                      # the last event (offline wakes) at 76, then 3 ordinary ones
MODULES = [{"address": "0x50", "name": "ui3"}, {"address": "0x51", "name": "basic-pv"},
           {"address": "0x52", "name": "standard"}]
CHANNELS = {"ui3": 3, "basic-pv": 1, "standard": 2}
STALE_AT, REBOOT_AT, CORRUPT_AT = 20, 40, 61
OFFLINE = set(range(30, 34)) | {75, 76}     # wakes without WiFi: the records wait on flash
AWAKE_S = 5                        # the cold boot checks the broker's totals: 1 s + 2 s
PERIOD_RE = re.compile(r"I period: (\S+) (\w+) [\d.]+ s: (.*)")


def rtc_state(node):
    return _rtc_state(node.board)


def totals(doc):
    return {m["name"]: [c[0] / 1e6 for c in m["ch"]] for m in doc["meters"].values()}


def import_truth(ctl):
    return {n: [ch[0] for ch in chans] for n, chans in ctl.truth()["truth"].items()}


def logged_periods(text):
    """[(module, ["%.4f" import Wh per channel])] in the order the node booked them."""
    out = []
    for line in text.splitlines():
        m = PERIOD_RE.search(line)
        if m:
            out.append((m.group(1), re.findall(r"ch\d \+([\d.]+)/", m.group(3))))
    return out


def net_config(broker, **kw):
    return base_config(node={"id": "sl1", "name": "sleeper"}, wifi={"ssid": "ap", "password": "pw"},
                       mqtt={"host": broker.host, "port": broker.port},
                       sleep=dict({"awake_s": AWAKE_S}, **kw.pop("sleep", {})), **kw)


def bench_and_broker(tmp_path):
    path = os.path.join(str(tmp_path), "scenario.json")
    with open(path, "w") as f:
        json.dump(scenario("energy.json"), f)
    bench = hostenv.SimProcess(path)
    return bench, bench.client(), Broker()


@pytest.mark.xdist_group("long")   # 80 wakes with WiFi association: 3 min, mostly waiting
def test_eighty_sleep_cycles_count_every_wh(tmp_path):
    bench, ctl, broker = bench_and_broker(tmp_path)
    rec = Recorder(broker)
    rec.connect()
    cfg = net_config(broker, mode="sleep", period_s=PERIOD_S, save_s=SAVE_S, modules=MODULES)
    node = HostNode(str(tmp_path), bench.address, cfg, bench_client=ctl)
    rng = random.Random(6)
    lost = {n: [0.0] * k for n, k in CHANNELS.items()}
    cycle = [0]

    def sleep(ms):
        """The simulator's world goes on while the node sleeps; faults land mid-sleep."""
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
    logs, seen, at_latch, base, floor = [], {}, None, None, {}
    try:
        for cycle[0] in range(CYCLES):
            for name, k in CHANNELS.items():          # new loads for the coming sleep
                for ch in range(k):
                    ctl.set_load(module=name, ch=ch, load=rng.choice((0, 60, 450, 1200, 2900)))
            if cycle[0] == STALE_AT:
                ctl.module_fault(module="standard", action="empty_latch", value=1)
            if cycle[0] == CORRUPT_AT:
                # a brown-out: RTC memory garbage. The flash ledger is older: what was booked
                # since its last save is lost (the broker is a mirror, never a source), and
                # the published totals stay at the broker's until the ledger passes them.
                doc, led = rtc_state(node), read_ledger(node.fs)
                for m in rec.msgs:
                    if m.topic.endswith("/energy"):
                        floor[m.topic.split("/")[2]] = m.json()["imp"]
                behind = [(c[0] - led["meters"][k]["ch"][ch][0]) for k, m in doc["meters"].items()
                          for ch, c in enumerate(m["ch"])]
                assert max(behind) > 0, "the flash ledger is not behind: nothing to recover"
                for k, m in doc["meters"].items():     # lost: booked after the last flash save
                    for ch, c in enumerate(m["ch"]):
                        lost[led["meters"][k]["name"]][ch] += (
                            c[0] - led["meters"][k]["ch"][ch][0]) / 1e6
                with open(os.path.join(node.board, "rtc_memory"), "wb") as f:
                    f.write(os.urandom(300))
            ctl.wifi(up=cycle[0] not in OFFLINE)
            p = node.start(stdout=subprocess.PIPE)
            out, _ = p.communicate(timeout=60)
            logs.append(out.decode())
            awake = re.search(r"awake (\d+) ms", logs[-1])
            assert awake and int(awake.group(1)) < AWAKE_S * 1000 + 1500, logs[-1]
            if cycle[0] in OFFLINE:
                assert "network step cut off" in logs[-1], logs[-1]
            at_latch = ctl.truth()["at_latch"]         # the truth when each module latched
            if cycle[0] == 0:                          # the cold boot's primer: the start
                base = at_latch
            doc = rtc_state(node)
            assert doc is not None, logs[-1]
            for name, vals in totals(doc).items():     # never decreasing
                for ch, v in enumerate(vals):
                    drop = seen.get((name, ch), 0) - v
                    assert drop <= 0 or cycle[0] == CORRUPT_AT, (cycle[0], name, ch, logs[-1])
                    seen[name, ch] = v
            assert node.finish() is not None, logs[-1]
            assert "Traceback" not in logs[-1], logs[-1]
    finally:
        node.kill()
        truth = import_truth(ctl)
        bench.stop()
        rec.close()
        broker.stop()
    text = "".join(logs)
    check_records(rec, text)
    check_published(rec, rtc_state(node), floor)
    assert "standard: empty latch" in text
    assert "ui3: module rebooted" in text
    assert "sleep state corrupted" in text or "no sleep state" in text, text[-2000:]
    assert "the broker's total leads the ledger" in text
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


def check_records(rec, text):
    """Every booked period on the broker once, in order (per module), with the same Wh."""
    got = {}
    for m in rec.msgs:
        if m.topic.endswith("/period"):
            r = m.json()
            got.setdefault(r["module"], []).append(r["import_wh"])
    want = {}
    for name, wh in logged_periods(text):
        want.setdefault(name, []).append([float(x) for x in wh])
    assert set(want) == set(CHANNELS)
    for name in CHANNELS:
        assert len(want[name]) == CYCLES - 1
        g = got.get(name, [])
        # the log has 4 decimals; a float32 build's JSON has 7 significant digits
        same = len(g) == len(want[name]) and all(
            len(a) == len(b) and all(abs(x - y) <= 6e-5 + 2e-7 * abs(y) for x, y in zip(a, b))
            for a, b in zip(g, want[name]))
        assert same, (name, len(g), len(want[name]), g, want[name])


def check_published(rec, doc, floor):
    """The published totals never decrease; the last ones are the node's, or the broker's
    from before the RTC loss where the ledger has not passed them yet; discovery expires,
    no availability."""
    last = {}
    for m in rec.msgs:
        if m.topic.endswith("/energy"):
            name, imp = m.topic.split("/")[2], m.json()["imp"]
            for ch, v in enumerate(imp):
                assert v >= last.get(name, imp)[ch], (name, last[name], imp)
            last[name] = imp
    for name, vals in totals(doc).items():
        for ch, (kwh, wh) in enumerate(zip(last[name], vals)):
            want = max(wh / 1000, floor[name][ch])
            assert abs(kwh - want) < 2e-6, (name, last[name], vals, floor[name])
    disc = [m.json() for m in rec.msgs if m.topic.startswith("homeassistant/") and m.payload]
    assert disc and all("exp_aft" not in d and "avty_t" not in d and all(
        c["exp_aft"] == 3 * PERIOD_S + AWAKE_S for c in d["cmps"].values()) for d in disc)
    status = [m.text for m in rec.msgs if m.topic == "rbnode/sl1/status"]
    assert status[-1] == "asleep" and "offline" not in status, status[-12:]


def test_stay_awake_flag_keeps_the_node_up_until_released(tmp_path):
    """A retained stay_awake "on" keeps the woken node up: it books a period every period_s
    and answers commands; the stay_awake command {"on": false} updates the flag and the node
    goes back to deep sleep, with a clean "asleep"."""
    bench, ctl, broker = bench_and_broker(tmp_path)
    cfg = net_config(broker, mode="sleep", period_s=10, modules=MODULES[:1])
    node = HostNode(str(tmp_path), bench.address, cfg, bench_client=ctl)
    ctl.set_load(module="ui3", ch=0, load=800)
    try:
        with Recorder(broker) as rec:
            for _ in range(2):                      # the cold boot, then an ordinary wake
                out = node.start(stdout=subprocess.PIPE).communicate(timeout=60)[0].decode()
                assert node.finish() is not None and "staying awake" not in out, out
            rec.publish("rbnode/sl1/stay_awake", "on", retain=True)
            p = node.start(stdout=subprocess.PIPE)
            for wake in (3, 4):                     # periods booked while it stays up
                rec.wait(lambda m: m.topic == "rbnode/sl1/ui3/period" and
                         m.json()["wake"] == wake, timeout=30, what="period of wake %d" % wake)
            assert p.poll() is None
            rec.publish("rbnode/sl1/cmd/stay_awake", '{"id": "m1", "on": false}')
            res = rec.wait(lambda m: m.topic == "rbnode/sl1/result", timeout=10).json()
            assert res["ok"] and res["id"] == "m1", res
            out = p.communicate(timeout=30)[0].decode()
            assert node.finish() is not None, out      # deep sleep again
            rec.wait(lambda m: m.topic == "rbnode/sl1/stay_awake" and m.text == "off",
                     timeout=5, what="the flag, off")  # the next wake sleeps at once
            status = [m.text for m in rec.msgs if m.topic == "rbnode/sl1/status"]
            assert status[-1] == "asleep", status
            assert "staying awake" in out and "Traceback" not in out, out
            powers = [m.json()["avg_w"][0] for m in rec.msgs if m.topic.endswith("/period")]
            assert all(abs(w - 800) < 1 for w in powers[1:]), powers
    finally:
        node.kill()
        bench.stop()
        broker.stop()


def test_early_wake_on_a_power_threshold(tmp_path):
    """sleep.wake_pin + sleep.wake_w: a module whose power rises above wake_w holds the DRDY
    line low and the board wakes before the period is due (the runner ends the sleep when the
    bench holds the pin). The early wake books the period like any other and publishes a
    threshold event; the next sleep is on the timer only (one early wake per period); a
    module already above the threshold is not armed; every wake leaves the line free."""
    bench, ctl, broker = bench_and_broker(tmp_path)
    cfg = net_config(broker, mode="sleep", period_s=PERIOD_S, modules=MODULES,
                     sleep={"awake_s": AWAKE_S, "wake_pin": 4, "wake_w": 1000})
    node = HostNode(str(tmp_path), bench.address, cfg, bench_client=ctl)
    start_w = {"ui3": 300, "basic-pv": 200, "standard": 2000}     # ch0; the others carry 0 W
    end_w = {"ui3": 1500, "basic-pv": 200, "standard": 3000}
    plan = {(1, 40000): ("ui3", 1500),       # first sleep: ui3 rises 40 s in -> early wake
            (2, 0): ("standard", 100),        # timer-only sleep: standard drops
            (3, 10000): ("standard", 3000)}   # armed again: standard rises -> early wake

    def sleep(ms):
        act = plan.get((len(node.boots), node.slept_ms))
        if act:
            ctl.set_load(module=act[0], ch=0, load=act[1])
        ctl.fast_forward(ms=ms)
    node.during_sleep = sleep
    logs, slept = [], []
    try:
        for name, load in start_w.items():
            ctl.set_load(module=name, ch=0, load=load)
        with Recorder(broker) as rec:
            for _ in range(4):
                logs.append(node.start(stdout=subprocess.PIPE).communicate(timeout=60)[0].decode())
                assert "Traceback" not in logs[-1], logs[-1]
                if not logs[1:]:
                    base = ctl.truth()["at_latch"]
                assert ctl.pin_level(pin=4)["level"] == 1, logs[-1]    # the line is free
                assert node.finish() is not None, logs[-1]
                slept.append(node.slept_ms)
            ends = [b[2] for b in node.boots]
            rec.wait(lambda m: m.topic == "rbnode/sl1/events" and
                     m.json()["module"] == "standard", timeout=5, what="standard's event")
            events = [m.json() for m in rec.msgs if m.topic == "rbnode/sl1/events"]
            at_latch = ctl.truth()["at_latch"]
            periods = [m.json() for m in rec.msgs if m.topic.endswith("/period")]
    finally:
        node.kill()
        bench.stop()
        broker.stop()
    # cold boot: ui3 and basic-pv armed, standard (2000 W) not; the wake came 40.0-40.4 s in
    assert "early wake armed above 1000 W on ui3, basic-pv" in logs[0], logs[0]
    assert "not armed on standard" in logs[0], logs[0]
    assert ends[0].endswith(" ext0 4 0") and ends[2].endswith(" ext0 4 0"), ends
    assert "early wake: above 1000 W: ui3" in logs[1], logs[1]
    assert "timer only" in logs[1] and "ext0" not in ends[1], ends  # one early wake per period
    assert PERIOD_S * 1000 - AWAKE_S * 1000 - 1500 < int(ends[1].split()[1]) <= PERIOD_S * 1000
    assert "not armed on ui3" in logs[2] and "armed above 1000 W on basic-pv, standard" in logs[2]
    assert "early wake: above 1000 W: standard" in logs[3], logs[3]
    assert [(e["kind"], e["module"], e["limit_w"]) for e in events] == [
        ("threshold", "ui3", 1000), ("threshold", "standard", 1000)], events
    # the power of the newest RT window at the wake: it may be the one the step fell in
    assert 1000 < events[0]["w"] < 1520 and 1000 < events[1]["w"] < 3020, events
    ui3 = [p for p in periods if p["module"] == "ui3"]
    assert [p["wake"] for p in ui3] == [2, 3, 4]
    assert 40000 <= slept[0] <= 40400 and 10000 <= slept[2] <= 10400, slept
    awake = int(re.search(r"awake (\d+) ms", logs[0]).group(1))
    assert 0 < ui3[0]["dt_ms"] - slept[0] < awake + 500, ui3[0]     # the early wake's period
    # A latch closes whole RT windows: at the primer and at the last latch the module's
    # periods and the truth at the latch instant may differ by up to one 200 ms window of the
    # power then (small against 0.1 % in the 100-wake test; not here, ~30 Wh in all)
    got = totals(rtc_state(node))
    for name, k in CHANNELS.items():
        for ch in range(k):
            want = at_latch[name][ch] - base[name][ch]
            window = 0.2 * (start_w[name] + end_w[name]) / 3600 if ch == 0 else 0
            assert abs(got[name][ch] - want) <= max(1e-3 * want, 0.01) + window, (
                name, ch, got, want)


def test_rp2_wakes_count_every_wh(tmp_path):
    """RP2040 in sleep mode (HOSTBOARD_PORT=rp2, as the chip: no RTC memory, and a deep sleep,
    machine.reset() and a watchdog bite are all WDT_RESET): each wake is known for one by
    the mark the node left in machine.mem_backup() before it slept, so the period that
    spanned the sleep is booked (from the flash ledger, written every wake), not primed
    away; a power-on clears the mark, and that boot primes."""
    bench, ctl, broker = bench_and_broker(tmp_path)
    broker.stop()
    cfg = base_config(mode="sleep", period_s=60, save_s=3600, modules=MODULES[:1])
    node = HostNode(str(tmp_path), bench.address, cfg, bench_client=ctl,
                    env={"HOSTBOARD_PORT": "rp2"})
    for m in ctl.modules()["modules"]:
        for ch in range(m["channels"]):
            ctl.set_load(module=m["name"], ch=ch, load=0)
    ctl.set_load(module="ui3", ch=0, load=1000)
    causes, lives = [], []
    try:
        for i in range(7):
            out = node.start(stdout=subprocess.PIPE).communicate(timeout=60)[0].decode()
            assert node.finish() is not None and "Traceback" not in out, out
            causes += re.findall(r"wake #\d+ \((\w+)\) energy step", out)
            led = read_ledger(node.fs)
            lives.append(totals(led)["ui3"][0] if led else 0.0)
            if i == 0:
                base = ctl.truth()["at_latch"]["ui3"][0]
        truth = ctl.truth()["at_latch"]["ui3"][0] - base
        node.power_on()                           # the mark goes with the power: a cold boot
        out = node.start(stdout=subprocess.PIPE).communicate(timeout=60)[0].decode()
        assert node.finish() is not None, out
        assert re.findall(r"wake #\d+ \((\w+)\) energy step", out) == ["pwron"], out
        assert totals(read_ledger(node.fs))["ui3"][0] >= lives[-1]
    finally:
        node.kill()
        bench.stop()
    assert causes == ["pwron"] + ["deepsleep"] * 6, causes
    assert lives == sorted(lives), lives
    assert abs(lives[-1] - lives[0] - truth) <= truth * 0.001 + 0.01, (lives, truth)
    assert truth > 6 * 60 * 1000 / 3600 * 0.9, truth          # six sleeps of 60 s at 1 kW
