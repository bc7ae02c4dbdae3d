"""The ledger is the only source of truth (issue 16): the real node on the unix port against
the bench's ground truth.

- a module hot-swapped at the same address, running and asleep: each UID gets the energy its
  own module measured;
- a filesystem that is full, then read-only (a real tmpfs): the node keeps metering, reports
  the condition in the log and in health, never resets, and saves once it can;
"""
import json
import os
import subprocess
import time

import pytest

from nodeharness import NodeRun, base_config, read_ledger, scenario
from tools import hostenv
from tools.hostrun import HostNode

OLD = "e1000000000000000000beef"          # ui3 in energy_bench.json
NEW = "e1000000000000000000cafe"
NEW_SPEC = {"name": "ui3-new", "variant": "UI3", "address": 80, "tier": 0, "ct": [3, 3, 6],
            "uid": NEW, "drdy_pin": 4, "drift_ppm": -15,
            "channels": [{"load": 0}, {"load": 0}, {"load": 0}]}
W_OLD, W_NEW = 1500, 800
WINDOW_WH = 0.2 / 3600                     # one RT window of 1 W


def by_uid(ledger):
    return {k: [c[0] / 1e6 for c in m["ch"]] for k, m in ledger["meters"].items()}


def swap(ctl):
    """ui3 unplugged, another UI3 with another UID plugged in at 0x50 at once."""
    ctl.module_fault(module="ui3", action="unplug")
    t_old = ctl.truth()["truth"]["ui3"][0][0]
    ctl.add_module(spec=NEW_SPEC)
    ctl.set_load(module="ui3-new", ch=0, load=W_NEW)
    return t_old


def test_hot_swap_while_running_books_each_uid_its_own_energy(tmp_path):
    cfg = base_config(modules=[{"address": "0x50", "name": "ui3"}])
    with NodeRun(tmp_path, scenario("energy_bench.json"), cfg) as run:
        run.wait_for("metering: 1 meter(s)")
        run.ctl.set_load(module="ui3", ch=0, load=W_OLD)
        t0 = run.ctl.truth()["truth"]["ui3"][0][0]      # the primer latch came before
        run.wait_for("I period: ui3 ok", timeout=30)
        time.sleep(4)                                    # the swap falls inside a period
        t_old = swap(run.ctl)
        n = len(run.lines)
        run.wait_for("a different module (uid %s)" % NEW, timeout=30, start=n)
        run.wait_for("I period: ui3 ok", timeout=30, start=n)   # a whole period of the new one
        run.ctl.set_load(module="ui3-new", ch=0, load=0)
        run.wait_for("I period: ui3 ok", timeout=30, start=len(run.lines))
        assert run.stop() == 0
        truth = run.ctl.truth()["truth"]
    out = run.output()
    got = by_uid(read_ledger(run.fs))
    old_wh, new_wh = got[OLD][0], got[NEW][0]
    want_old, want_new = t_old - t0, truth["ui3-new"][0][0]
    print("old uid %.4f Wh (truth %.4f), new uid %.4f Wh (truth %.4f)" % (
        old_wh, want_old, new_wh, want_new))
    # the old module: up to its last RT window read before it went (at most one window and
    # the primer's open window short); the new one: its own windows since its boot (its
    # first, incomplete window is measured by nobody), within a window: the latch that
    # closes a window holding a load change may place it in either period
    assert want_old - 2.5 * W_OLD * WINDOW_WH <= old_wh <= want_old + 0.001, out[-3000:]
    assert abs(new_wh - want_new) <= W_NEW * WINDOW_WH + 5e-4 * want_new, out[-3000:]
    assert "swapped" in out and "Traceback" not in out


def test_hot_swap_while_asleep_books_each_uid_its_own_energy(tmp_path):
    path = os.path.join(str(tmp_path), "scenario.json")
    with open(path, "w") as f:
        json.dump(scenario("energy_bench.json"), f)
    bench = hostenv.BenchProcess(path)
    ctl = bench.client()
    cfg = base_config(mode="sleep", period_s=60, save_s=60,
                      modules=[{"address": "0x50", "name": "ui3"}])
    node = HostNode(str(tmp_path), bench.address, cfg, bench_client=ctl)
    ctl.set_load(module="ui3", ch=0, load=W_OLD)
    marks = {}

    def sleep(ms):
        if len(node.boots) == 3:                # the swap in the middle of the 3rd sleep
            ctl.fast_forward(ms=ms // 2)
            marks["old"] = swap(ctl)
            ctl.fast_forward(ms=ms - ms // 2)
        else:
            ctl.fast_forward(ms=ms)
    node.during_sleep = sleep
    logs = []
    try:
        for i in range(6):
            out = node.start(stdout=subprocess.PIPE).communicate(timeout=60)[0].decode()
            logs.append(out)
            if i == 0:
                marks["base"] = ctl.truth()["at_latch"]["ui3"][0]
            if i == 2:
                marks["last_old"] = ctl.truth()["at_latch"]["ui3"][0]
            assert node.finish() is not None, out
        new_truth = ctl.truth()["at_latch"]["ui3-new"][0]
    finally:
        node.kill()
        bench.stop()
    text = "".join(logs)
    got = by_uid(read_ledger(node.fs))
    # the old module: every latch it made (its energy between its last latch and the swap
    # was measured by nobody); the new one: its own windows since its boot, up to its last
    want_old = marks["last_old"] - marks["base"]
    print("old %.4f Wh (truth %.4f), new %.4f Wh (truth %.4f)" % (
        got[OLD][0], want_old, got[NEW][0], new_truth))
    assert abs(got[OLD][0] - want_old) <= max(1e-3 * want_old, 0.01), text[-3000:]
    assert abs(got[NEW][0] - new_truth) <= max(1e-3 * new_truth, 0.01) + W_NEW * WINDOW_WH, \
        text[-3000:]
    assert "Traceback" not in text


def _mount_tmpfs(path, size="256k"):
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (a filesystem that really fills up)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip("mount tmpfs failed: %s" % r.stderr.strip())


def _fill(path):
    fd = os.open(os.path.join(path, "filler"), os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_full_then_read_only_filesystem_is_reported_never_a_reset(tmp_path):
    """The node's flash is a real 256 KB tmpfs: filled up before the first save, then freed,
    then remounted read-only. Metering never stops, the log and health name the condition,
    the node never resets, and once the filesystem takes writes again nothing is lost."""
    from tools.broker import Broker
    from tools.mqttrec import Recorder
    fs = os.path.join(str(tmp_path), "fs")
    _mount_tmpfs(fs)
    broker = Broker()
    try:
        cfg = base_config(modules=[{"address": "0x50", "name": "ui3"}], save_s=3,
                          wifi={"ssid": "ap", "password": "pw"},
                          mqtt={"host": broker.host, "port": broker.port, "health_s": 10})
        run = NodeRun(tmp_path, scenario("energy_bench.json"), cfg)
        _fill(fs)
        with Recorder(broker) as rec, run:
            run.ctl.set_load(module="ui3", ch=0, load=1200)
            i = run.wait_for("ledger save failed (ENOSPC: filesystem full", timeout=30)
            for _ in range(2):                       # metering goes on
                i = run.wait_for("I period: ui3 ok", timeout=25, start=i + 1)
            h = rec.wait(lambda m: m.topic.endswith("/health") and
                         "ENOSPC" in (m.json().get("storage") or ""), timeout=30).json()
            assert h["storage"].startswith("ENOSPC"), h
            fails = sum("ledger save failed" in x for x in run.lines)
            assert 2 <= fails <= 12, fails           # retried with backoff, not every tick
            os.remove(os.path.join(fs, "filler"))   # space again
            i = run.wait_for("ledger saved again", timeout=20, start=i)
            truth = run.ctl.truth()["truth"]["ui3"][0][0]
            saved = read_ledger(fs)["meters"][OLD]["ch"][0][0] / 1e6
            # everything since the start is in the first successful save (less the open
            # RT window and the few ms between the save and the truth read)
            assert truth - 2 * 1200 * WINDOW_WH <= saved <= truth + 0.001, (saved, truth)
            mark = rec.mark()
            rec.wait(lambda m: m.topic.endswith("/health") and m.json().get("storage") == "ok",
                     start=mark, timeout=30)
            subprocess.run(["mount", "-o", "remount,ro", fs], check=True)
            i = run.wait_for("EROFS: read-only filesystem", timeout=20, start=i)
            i = run.wait_for("I period: ui3 ok", timeout=25, start=i + 1)
            assert run.stop() == 0
        out = run.output()
        assert "the ledger could NOT be saved" in out, out[-2000:]
        for bad in ("Traceback", "crashed", "resetting"):
            assert bad not in out, out[-3000:]
        assert read_ledger(fs)["meters"][OLD]["ch"][0][0] / 1e6 >= saved
    finally:
        broker.stop()
        subprocess.run(["umount", "-l", fs])
