"""Over-the-air updates on the real node (issue 22): the unix port running boot.py and main.py,
the simulator, a real mosquitto, the real mqtt_as, a local HTTP server (CPython's), bundles
made by `make ota-bundle` and tools/ota.py.

test_update_end_to_end, one node through: a downgrade refused; a bundle with a bad signature
and a download cut short (the node stays on its version, says why on <base>/ota); a power cut
in the middle of a download (the node comes back on its version, the slot unfinished); a
good update (progress on <base>/ota, the ledger saved, the restart into it, the trial, healthy,
kept); power cuts at instants around the next update's switch (every restart runs a whole
version, the old or the new); ota_rollback. Through all of it the energy against the
simulator's truth: nothing lost or counted twice across the restarts.

test_power_cut_inside_the_switch: the power cut at the exact instants strace makes it (SIGKILL
on entering the k-th rename: the slot's MANIFEST, then the state's): the node comes back on
its version each time, then the update goes through.

test_bad_versions_roll_back: a version that crashes at boot (back at once, with the
exception), and one that never connects (back after ota.confirm_s, with what it lacked).
"""
import os
import shutil
import time

import pytest

from nodeharness import NodeRun, base_config, read_ledger, scenario
from otaserver import (OtaServer, command, make_bundle, new_key, ota_status, reboot,
                       lifetime, running_version, single_load, variant)
from tools import ota
from tools.host import hostenv
from tools.host.broker import Broker
from tools.host.mqttrec import Recorder

BASE = "rbnode/rbnode-00beef"
pytestmark = pytest.mark.slow             # make test-slow (CI runs it)
LOAD_W = 1200.0
SAVE_S = 5


def _config(broker, pub, **ota_kw):
    o = {"enabled": True, "key": pub, "confirm_s": 30, "max_boots": 2}
    o.update(ota_kw)
    return base_config(modules=[{"address": "0x50", "name": "ui3"}], save_s=SAVE_S,
                       wifi={"ssid": "bench-ap", "password": "x"},
                       mqtt={"host": broker.host, "port": broker.port, "health_s": 10},
                       ota=o)


def _ota(rec, name, payload, rid):
    return command(rec, BASE, name, payload, rid, timeout=15)


def _status(rec, pred, timeout, what, start=0):
    return ota_status(rec, BASE, pred, timeout, what, start)


def _reboot(run, rec, power_cut=False):
    return reboot(run, rec, power_cut)


def _running(rec, run, n, mark):
    return running_version(rec, BASE, run, n, mark)


def _slot_done(run, slot):
    return os.path.exists(os.path.join(run.fs, "ota", slot, "MANIFEST"))


def test_update_end_to_end(tmp_path):
    key, pub = new_key(tmp_path)
    v2 = make_bundle(tmp_path, "0.2.0")
    v3 = make_bundle(tmp_path, "0.3.0")
    sig = v2.rindex(b"S ") + 20
    bad_sig = v2[:sig] + (b"B" if v2[sig:sig + 1] != b"B" else b"C") + v2[sig + 1:]
    at = v2.index(b"\n", v2.index(b"\nF ") + 1) + 100          # a byte of the first file
    bad_hash = v2[:at] + bytes([v2[at] ^ 0x10]) + v2[at + 1:]
    srv = OtaServer({"/v2.rbota": v2, "/v3.rbota": v3, "/badsig.rbota": bad_sig,
                     "/badhash.rbota": bad_hash, "/cut.rbota": v2})
    srv.cut["/cut.rbota"] = len(v2) // 3
    broker = Broker()
    totals = []                    # the ledger's lifetime import at each restart
    cuts = 1
    try:
        with Recorder(broker) as rec, NodeRun(tmp_path, scenario("energy.json"),
                                              _config(broker, pub)) as run:
            ctl = run.ctl
            t0 = single_load(run, LOAD_W)
            run.wait_for("link: connected", timeout=30)
            st = _status(rec, lambda d: True, 30, "the ota status at the connect")
            assert st["state"] == "idle" and st["version"] == "0.1.0", st
            assert st["ha"]["installed_version"] == "0.1.0" and not st["ha"]["in_progress"], st
            # a downgrade, and no gate/URL tricks
            r = _ota(rec, "ota", {"url": srv.url("/v2.rbota"), "version": "0.1.0"}, "down")
            assert not r["ok"] and "not newer than the running 0.1.0" in r["error"], r
            r = _ota(rec, "ota", {"url": "ftp://x/y", "version": "0.2.0"}, "ftp")
            assert not r["ok"] and "http:// or https://" in r["error"], r
            # a bad signature, a changed byte, a download cut short: refused, the slot removed
            for path, want in (("/badsig.rbota", "the signature does not verify"),
                               ("/badhash.rbota", "its SHA-256 is not the one in its line"),
                               ("/cut.rbota", "closed before the end of the body")):
                mark = rec.mark()
                r = _ota(rec, "ota", {"url": srv.url(path), "version": "0.2.0"}, path)
                assert r["ok"] and r["slot"] == "b" and r["to"] == "0.2.0", r
                st = _status(rec, lambda d: d["state"] == "failed", 60, path, mark)
                assert want in st["error"] and st["version"] == "0.1.0", st
                assert not _slot_done(run, "b")
            # a power cut in the middle of the download
            srv.rate = 100000
            mark = rec.mark()
            r = _ota(rec, "ota", {"url": srv.url("/v2.rbota"), "version": "0.2.0"}, "cut")
            assert r["ok"], r
            srv.wait_sent("/v2.rbota", len(v2) // 2)
            n, mark = _reboot(run, rec, power_cut=True)
            srv.rate = 0
            assert not _slot_done(run, "b")
            assert _running(rec, run, n, mark) == "0.1.0"
            totals.append(lifetime(run))
            # the good update: progress, rebooting, the new version on trial, then kept
            # (about 5 s: the outbox keeps the latest status only, so a download that ends
            # before it sends any has nothing between 0 and "rebooting" to show)
            mark = rec.mark()
            srv.rate = len(v2) // 5
            r = _ota(rec, "ota", {"url": srv.url("/v2.rbota"), "version": "0.2.0"}, "good")
            assert r["ok"] and r["from"] == "0.1.0", r
            _status(rec, lambda d: d["state"] == "rebooting", 60, "rebooting", mark)
            srv.rate = 0
            prog = [m.json()["progress"] for m in rec.since(mark)
                    if m.topic == BASE + "/ota" and m.json()["state"] == "downloading"]
            assert len(set(prog)) >= 2 and prog == sorted(prog), prog   # in order, as sent
            n, mark = _reboot(run, rec)
            assert _running(rec, run, n, mark) == "0.2.0"
            run.wait_for("version 0.2.0 on trial", timeout=10, start=n)
            st = _status(rec, lambda d: d["state"] == "ok", 60, "healthy", mark)
            assert st["version"] == "0.2.0" and st["last"]["result"] == "ok", st
            assert st["ha"]["installed_version"] == "0.2.0", st
            assert "ota/b/rbnode/app.mpy" in run.output()[-20000:] or _slot_done(run, "b")
            totals.append(lifetime(run))
            # power cuts around the switch of the next update: from the instant its slot is
            # complete (MANIFEST renamed into place) through the ledger's save and the state's
            # rename; each restart runs a whole version (0.2.0, or 0.3.0 once the switch is
            # on the flash), never a half-written one
            seen = []
            part = os.path.join(run.fs, "ota", "a", "MANIFEST.part")
            done = os.path.join(run.fs, "ota", "a", "MANIFEST")
            for delay in (0.0, 0.001, 0.002, 0.004, 0.007, 0.01, 0.015, 0.02, 0.03, 0.05, None):
                mark = rec.mark()
                r = _ota(rec, "ota", {"url": srv.url("/v3.rbota"), "version": "0.3.0"},
                         "sw%s" % delay)
                assert r["ok"], r
                if delay is not None:
                    deadline = time.monotonic() + 60
                    while not os.path.exists(part) and run.proc.poll() is None:
                        assert time.monotonic() < deadline, "the install never began"
                        time.sleep(0.0005)
                    while not os.path.exists(done) and run.proc.poll() is None:
                        assert time.monotonic() < deadline, "the install never ended"
                        time.sleep(0.0002)
                    time.sleep(delay)
                else:
                    run.proc.wait(60)
                gone = run.proc.poll() is not None
                cuts += not gone
                n, mark = _reboot(run, rec, power_cut=not gone)
                v = _running(rec, run, n, mark)
                seen.append(v)
                assert v in ("0.2.0", "0.3.0"), (delay, v)
                if v == "0.3.0":
                    assert os.path.exists(done)
                totals.append(lifetime(run))
                if v == "0.3.0":
                    break
            print("versions after the cuts around the switch:", seen)
            assert seen[-1] == "0.3.0", seen
            _status(rec, lambda d: d["state"] == "ok" and d["version"] == "0.3.0", 60,
                    "0.3.0 healthy")
            # back by hand: the version before (slot b, 0.2.0)
            mark = rec.mark()
            r = _ota(rec, "ota_rollback", {}, "back")
            assert r["ok"] and "0.2.0" in r["to"], r
            n, mark = _reboot(run, rec)
            assert _running(rec, run, n, mark) == "0.2.0"
            st = _status(rec, lambda d: d["version"] == "0.2.0", 30, "after the rollback", mark)
            assert st["last"]["result"] == "rolled_back" and "by command" in \
                st["last"]["reason"], st
            time.sleep(3)
            truth = ctl.truth()["truth"]["ui3"][0][0] - t0
            run.stop()
            led = read_ledger(run.fs)
            totals.append(lifetime(run))
    finally:
        broker.stop()
        srv.stop()
    # the energy: never decreasing across the restarts, never more than the simulator's
    # truth; a power cut loses what came after the last save (save_s and a second)
    assert totals == sorted(totals), totals
    (m,) = led["meters"].values()
    got = m["ch"][0][0] / 1e6
    assert got <= truth * 1.0005 + 0.1, (got, truth)
    assert got >= truth - cuts * (SAVE_S + 1) * LOAD_W / 3600, (got, truth, cuts)


def test_bad_versions_roll_back(tmp_path):
    key, pub = new_key(tmp_path)
    crash = variant(tmp_path, key, "0.2.0", "rbnode/app.py",
                     lambda s: 'raise RuntimeError("version 0.2.0 is broken")\n' + s)
    deaf = variant(tmp_path, key, "0.3.0", "rbnode/net/link.py",
                    lambda s: s.replace('"port": m["port"]', '"port": 1'))
    srv = OtaServer({"/crash.rbota": crash, "/deaf.rbota": deaf})
    broker = Broker()
    try:
        with Recorder(broker) as rec, NodeRun(tmp_path, scenario("energy.json"),
                                              _config(broker, pub)) as run:
            run.wait_for("link: connected", timeout=60)
            _status(rec, lambda d: True, 30, "the ota status at the connect")   # subscribed
            for path, version, want, wait in (
                    ("/crash.rbota", "0.2.0",
                     "version did not start: RuntimeError: version 0.2.0 is broken", 30),
                    ("/deaf.rbota", "0.3.0", "not healthy within 30 s (missing: a broker "
                                             "connection)", 90)):
                mark = rec.mark()
                r = _ota(rec, "ota", {"url": srv.url(path), "version": version}, path)
                assert r["ok"], r
                _status(rec, lambda d: d["state"] == "rebooting", 60, "rebooting", mark)
                n, mark = _reboot(run, rec)                   # into the new version
                deadline = time.monotonic() + wait
                while run.proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)                # it goes back by itself: a reset
                assert run.proc.poll() is not None, run.output()[-3000:]
                n, mark = _reboot(run, rec)                   # the version before
                assert _running(rec, run, n, mark) == "0.1.0"
                st = _status(rec, lambda d: d["state"] == "rolled_back", 30, "rolled back",
                             mark)
                assert st["last"]["version"] == version and want in st["last"]["reason"], st
                assert st["version"] == "0.1.0" and want in st["error"], st
            run.stop()
    finally:
        broker.stop()
        srv.stop()


def _cut_at_rename(tmp_path, k):
    """A unix-port binary that is killed (SIGKILL: a power cut) on entering its k-th rename."""
    w = tmp_path / ("cut-at-rename-%d" % k)
    w.write_text("#!/bin/sh\nexec strace -f -qq -o /dev/null -e trace=rename,renameat,renameat2 "
                 "-e inject=rename,renameat,renameat2:signal=KILL:when=%d %s \"$@\"\n"
                 % (k, hostenv.micropython()))
    w.chmod(0o755)
    return str(w)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed "
                    "(apt-get install strace; make setup installs it as root)")
def test_power_cut_inside_the_switch(tmp_path, monkeypatch):
    key, pub = new_key(tmp_path)
    v2 = ota.build(ota.compile_app("0.2.0", ota.mpy_cross(), str(tmp_path)), "0.2.0",
                   ota.mpy_format(ota.mpy_cross()), key)
    srv = OtaServer({"/v2.rbota": v2})
    broker = Broker()
    real = hostenv.micropython()
    try:
        with Recorder(broker) as rec, NodeRun(tmp_path, scenario("energy.json"),
                                              _config(broker, pub)) as run:
            run.wait_for("link: connected", timeout=60)
            run.stop()
            slot = os.path.join(run.fs, "ota", "b")
            # the 1st rename is the slot's MANIFEST, the 2nd the switch (ota/state.new)
            for k, left in ((1, "MANIFEST.part"), (2, "MANIFEST")):
                monkeypatch.setenv("MICROPYTHON", _cut_at_rename(tmp_path, k))
                n, mark = len(run.lines), rec.mark()
                run.start()
                run.wait_for("link: connected", timeout=60, start=n)
                rec.wait(lambda m: m.topic == BASE + "/ota", timeout=30, start=mark)
                before = lifetime(run)
                r = _ota(rec, "ota", {"url": srv.url("/v2.rbota"), "version": "0.2.0"}, k)
                assert r["ok"], r
                run.proc.wait(60)                      # killed inside the rename
                assert run.proc.returncode != 0, run.output()[-2000:]
                assert os.path.exists(os.path.join(slot, left)), (k, os.listdir(slot))
                monkeypatch.setenv("MICROPYTHON", real)
                n, mark = _reboot(run, rec, power_cut=True)
                assert _running(rec, run, n, mark) == "0.1.0", k
                assert lifetime(run) >= before, k
                run.stop()
            # k = 2 left the new state written and not renamed: the old state rules
            assert os.path.exists(os.path.join(run.fs, "ota", "state.new"))
            n, mark = len(run.lines), rec.mark()
            run.start()
            run.wait_for("link: connected", timeout=60, start=n)
            rec.wait(lambda m: m.topic == BASE + "/ota", timeout=30, start=mark)
            r = _ota(rec, "ota", {"url": srv.url("/v2.rbota"), "version": "0.2.0"}, "whole")
            assert r["ok"], r
            n, mark = _reboot(run, rec)
            assert _running(rec, run, n, mark) == "0.2.0"
            run.stop()
    finally:
        broker.stop()
        srv.stop()
