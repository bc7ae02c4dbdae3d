"""The firmware update over the air, ESP32's second path (issue 22): a signed firmware bundle
(tools/ota.py firmware_bundle) streamed into the other OTA app partition by
rbnode/ota/firmware.py, set_boot, and the bootloader's rollback.

No ESP32 here: the partitions are the host board's model of esp32.Partition
(tools/host/board/esp32.py, after ports/esp32/esp32_partition.c) and its bootloader is
tools/host/espboot.py (ESP-IDF's rollback rules); the images are real ESP app images (esptool
reads them: checked below) holding a host app. What a chip would add that this cannot show:
flash timing, ESP-IDF's own image checks, a real bootloader. See README, "Updates over the air".

test_firmware_bundles_refused_by_name: every bad firmware bundle is refused naming why, and
the partition it wrote holds no image a bootloader would start; the board without OTA
partitions says so.

test_firmware_update_end_to_end: on the real node (real mosquitto, real mqtt_as): a power cut
mid-download and at the two renames inside the switch (ota/state's, otadata's: the same
firmware comes back, and says when the switch did not take), a good update (the bootloader
starts it, it reports healthy, marks itself valid), a firmware that never gets healthy and
one that crashes at boot (the bootloader goes back; the node says why). The energy through
it all against the simulator's truth.

test_firmware_update_in_sleep_mode: the same update on a sleep-mode node (stay_awake for the
download; the trial decided before its first deep sleep).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from nodeharness import NodeRun, base_config, rtc_state, scenario
from otaserver import (OtaServer, command, lifetime, new_key, ota_status, reboot,
                       running_version, single_load)
from test_ota_parts import _install as install_cases
from tools import ota
from tools.host import espimage, hostenv
from tools.host.broker import Broker
from tools.host.espboot import OtaFlash, lib_files
from tools.host.hostrun import DEEPSLEEP, SOFT, HostNode
from tools.host.mqttrec import Recorder

BASE = "rbnode/rbnode-00beef"
LOAD_W = 1200.0
SAVE_S = 5


def image(version, path=None, change=None, chip=0):
    """A firmware image: this tree's app, its version stamped (rbnode_build, as a build
    does), one file changed by change(text)."""
    files = lib_files(hostenv.LIB)
    files["rbnode_build.py"] = b'VERSION = "%s"\n' % version.encode()
    if path:
        files[path] = change(files[path].decode()).encode()
    return espimage.make(files, chip)


def _board(tmp_path, ota_board=True):
    board = tmp_path / "board"
    fs = tmp_path / "fs"
    fs.mkdir(parents=True, exist_ok=True)
    board.mkdir(exist_ok=True)
    flash = OtaFlash(str(board))
    if ota_board:
        flash.create(hostenv.LIB)
        flash.boot()                        # running: ota_0
    return flash, fs


def _install(tmp_path, pub, cases, ota_board=True):
    flash, _ = _board(tmp_path, ota_board)
    return flash, install_cases(tmp_path, None, cases, pub,
                                env=hostenv.node_env(board_dir=flash.board))


def test_firmware_bundles_refused_by_name(tmp_path):
    key, pub = new_key(tmp_path)
    good_img = image("0.2.0")
    good = ota.firmware_bundle(good_img, "0.2.0", key)
    # the image is an ESP image as esptool reads it (checksum and hash valid)
    (tmp_path / "app.bin").write_bytes(good_img)
    info = subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32", "image-info",
                           str(tmp_path / "app.bin")], capture_output=True, text=True)
    assert info.returncode == 0 and "Checksum" in info.stdout and "(valid)" in info.stdout, \
        info.stdout + info.stderr
    flash, (line,) = _install(tmp_path / "good", pub, [
        {"file": _write(tmp_path, "good", good), "running": "0.1.0", "expect": "0.2.0"}])
    assert line == "OK 0.2.0", line
    assert flash.read("ota_1")[:len(good_img)] == good_img
    assert flash.read("ota_0")[:24] == image("0.1.0")[:24]          # the running one: as it was
    # every bad one: refused by name, no bootable image in ota_1 (block 0 never written)
    sig_at = good.rindex(b"S ") + 2               # the signature line follows the image
    other = good[:sig_at] + bytes([good[sig_at] ^ 0x20 if good[sig_at:sig_at + 1].isalpha()
                                   else ord("A")]) + good[sig_at + 1:]
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    (tmp_path / "k2").mkdir()
    key2, _ = new_key(tmp_path / "k2")
    cases = [
        (other, "the signature does not verify"),
        (bytes(flipped), "its SHA-256 is not the one in its line"),
        (ota.firmware_bundle(image("0.2.0", chip=9), "0.2.0", key), "for chip id 9"),
        (ota.firmware_bundle(good_img, "0.2.0", key2), "signed with key"),
        (ota.firmware_bundle(image("0.0.9"), "0.0.9", key), "not newer than the running"),
        (ota.build([("firmware.bin", b"\x00" * 40000)], "0.2.0", None, key, kind="firmware"),
         "not an ESP32 app image"),
        (ota.build([("firmware.bin", good_img), ("x.bin", b"1")], "0.2.0", None, key,
                   kind="firmware"), "holds one file"),
        (ota.build([("firmware.bin", b"\xe9" * 0x200000)], "0.2.0", None, key,
                   kind="firmware"), "the app partition ota_1 holds"),
        (good + b"x", "data after the signature"),
        (ota.build([("firmware.bin", good_img)], "0.2.0", None, key, kind="romfs"),
         "a bundle of kind 'romfs'"),
    ]
    start = good.index(b"\nF ") + 1
    body = good.index(b"\n", start) + 1                   # the image's first byte
    for cut in (start + 20, body + 5000, body + 4096 + 300, len(good) // 2, len(good) - 10):
        cases.append((good[:cut], "a bad file line" if cut < body else
                      "the download ended inside the firmware" if cut < sig_at - 2 else
                      "no signature after the firmware"))
    for i, (data, want) in enumerate(cases):
        flash, (line,) = _install(tmp_path / ("bad%d" % i), pub, [
            {"file": _write(tmp_path, "bad%d" % i, data), "running": "0.1.0"}])
        assert line.startswith("ERR") and want in line, (i, want, line)
        assert espimage.verify(flash.read("ota_1")) is not None, (i, line)
    # a board without OTA partitions (the plain ESP32_GENERIC build): says what to flash
    _, (line,) = _install(tmp_path / "plain", pub, [
        {"file": _write(tmp_path, "plain", good), "running": "0.1.0"}], ota_board=False)
    assert "no second app partition" in line and "VARIANT=OTA" in line, line
    # the tool: the whole-flash image is not an update
    merged = bytearray(b"\xff" * 0x1000) + good_img
    merged[0:1] = b"\xe9"
    merged[0x7000:0x7002] = b"\xaa\x50"
    with pytest.raises(ota.OtaError, match="whole flash image"):
        ota.firmware_bundle(bytes(merged), "0.2.0", key)
    # make ota-firmware: the version from the image's name; another one refused by name
    app = tmp_path / "app-0.2.0.bin"
    app.write_bytes(good_img)
    tool = [sys.executable, os.path.join(hostenv.ROOT, "tools", "ota.py"), "firmware",
            "--key", str(tmp_path / "key.pem"), "--image", str(app)]
    p = subprocess.run(tool + ["--out", str(tmp_path / "fw.rbota")], capture_output=True,
                       text=True)
    assert p.returncode == 0 and "firmware 0.2.0" in p.stdout, p.stdout + p.stderr
    head, files = ota.parse((tmp_path / "fw.rbota").read_bytes(), pub)
    assert (head["kind"], head["chip"], head["version"]) == ("firmware", "esp32", "0.2.0"), head
    assert files == [("firmware.bin", len(good_img), hashlib.sha256(good_img).hexdigest())]
    p = subprocess.run(tool + ["--version", "0.3.0"], capture_output=True, text=True)
    assert p.returncode != 0 and "version 0.2.0 by its name, not 0.3.0" in p.stderr, p.stderr


def _write(tmp_path, name, data):
    p = tmp_path / (name + ".rbota")
    p.write_bytes(data)
    return str(p)


def _config(broker, pub):
    return base_config(modules=[{"address": "0x50", "name": "ui3"}], save_s=SAVE_S,
                       wifi={"ssid": "bench-ap", "password": "x"},
                       mqtt={"host": broker.host, "port": broker.port, "health_s": 10},
                       ota={"enabled": True, "key": pub, "confirm_s": 30, "max_boots": 2})


def _restart(run, rec, power_cut=False):
    """The board again (after a reset, or a power cut): the version it runs, connected."""
    n, mark = reboot(run, rec, power_cut)
    return running_version(rec, BASE, run, n, mark), mark


def _gone(run, wait):
    deadline = time.monotonic() + wait
    while run.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.proc.poll() is not None, run.output()[-3000:]


def _cut_at(tmp_path, path):
    """A unix-port binary killed (SIGKILL: a power cut) on entering its first rename of
    path (the string the node passes)."""
    w = tmp_path / ("cut-at-%d" % len(path))
    w.write_text("#!/bin/sh\nexec strace -f -qq -o /dev/null -P '%s' -e trace=rename,renameat,"
                 "renameat2 -e inject=rename,renameat,renameat2:signal=KILL:when=1 %s \"$@\"\n"
                 % (path, hostenv.micropython()))
    w.chmod(0o755)
    return str(w)


@pytest.mark.slow                          # make test-slow (CI runs it)
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed "
                    "(apt-get install strace; make setup installs it as root)")
def test_firmware_update_end_to_end(tmp_path, monkeypatch):
    key, pub = new_key(tmp_path)
    bundles = {
        "/v2.rbota": ota.firmware_bundle(image("0.2.0"), "0.2.0", key),
        "/deaf.rbota": ota.firmware_bundle(image("0.3.0", "rbnode/net/link.py", lambda s: s.replace(
            '"port": m["port"]', '"port": 1')), "0.3.0", key),
        "/crash.rbota": ota.firmware_bundle(image("0.3.1", "rbnode/app.py", lambda s: (
            'raise RuntimeError("firmware 0.3.1 is broken")\n' + s)), "0.3.1", key),
    }
    srv = OtaServer(bundles)
    broker = Broker()
    try:
        with Recorder(broker) as rec, NodeRun(tmp_path, scenario("energy.json"),
                                              _config(broker, pub), ota=True) as run:
            flash, ctl = run.node.flash, run.ctl
            t0 = single_load(run, LOAD_W)
            run.wait_for("link: connected", timeout=60)
            ota_status(rec, BASE, lambda d: True, 30, "the ota status at the connect")
            totals = [lifetime(run)]
            # a power cut in the middle of the download: the same firmware comes back
            srv.rate = 60000
            r = command(rec, BASE, "ota", {"url": srv.url("/v2.rbota"), "version": "0.2.0"},
                        "cut", 15)
            assert r["ok"], r
            srv.wait_sent("/v2.rbota", 150000)
            fw, mark = _restart(run, rec, power_cut=True)
            assert fw.startswith("0.1.0") and flash.log[-1][0] == "ota_0", flash.log
            assert espimage.verify(flash.read("ota_1")) is not None     # nothing bootable
            totals.append(lifetime(run))
            # power cuts inside the switch: at ota/state's rename (rbboot.switch_firmware),
            # then at otadata's (set_boot): the firmware before comes back either way, and
            # after the second it says the update did not take
            srv.rate = 0
            real = hostenv.micropython()
            for path, report in (("ota/state.new", None),
                                 (os.path.join(run.node.board, "otadata.json.tmp"),
                                  "the power failed during the switch")):
                monkeypatch.setenv("MICROPYTHON", _cut_at(tmp_path, path))
                run.stop()                                 # Ctrl-C: the ledger saved
                n, mark = len(run.lines), rec.mark()
                run.start()
                run.wait_for("link: connected", timeout=60, start=n)
                ota_status(rec, BASE, lambda d: True, 30, "the ota status (subscribed)", mark)
                rec.publish(BASE + "/cmd/ota", json.dumps({"url": srv.url("/v2.rbota"),
                                                           "version": "0.2.0"}))
                run.proc.wait(60)                          # killed inside the rename
                assert run.proc.returncode != 0, run.output()[-2000:]
                monkeypatch.setenv("MICROPYTHON", real)
                fw, mark = _restart(run, rec, power_cut=True)
                assert fw.startswith("0.1.0") and flash.log[-1][0] == "ota_0", flash.log
                if report:
                    st = ota_status(rec, BASE, lambda d: d["state"] == "rolled_back", 30,
                                    "the switch that did not take", mark)
                    assert report in st["last"]["reason"], st
                totals.append(lifetime(run))
            # the good update: progress, the restart, the bootloader starts ota_1, healthy
            before = lifetime(run)
            mark = rec.mark()
            r = command(rec, BASE, "ota", {"url": srv.url("/v2.rbota"), "version": "0.2.0"},
                        "up", 15)
            assert r["ok"], r
            ota_status(rec, BASE, lambda d: d["state"] == "rebooting", 60, "rebooting", mark)
            assert lifetime(run) >= before
            fw, mark = _restart(run, rec)
            assert fw == "0.2.0" and flash.log[-1] == ("ota_1", "otadata seq 2"), flash.log
            st = ota_status(rec, BASE, lambda d: d["state"] == "ok", 60, "healthy", mark)
            assert st["version"] == "0.2.0" and st["last"]["result"] == "ok", st
            assert [r and r["state"] for r in flash.records()].count("VALID") == 1, \
                flash.records()
            # the next two never report healthy: the bootloader goes back to 0.2.0 (ota_1)
            for path, version, want, wait in (
                    ("/deaf.rbota", "0.3.0", "not healthy within 30 s (missing: a broker "
                                             "connection)", 90),
                    ("/crash.rbota", "0.3.1", "version did not start: RuntimeError: firmware "
                                              "0.3.1 is broken", 30)):
                mark = rec.mark()
                r = command(rec, BASE, "ota", {"url": srv.url(path), "version": version},
                            path, 15)
                assert r["ok"], r
                ota_status(rec, BASE, lambda d: d["state"] == "rebooting", 60, "rebooting",
                           mark)
                run.proc.wait(60)
                assert run.node.finish() is not None
                run.start()                              # the new firmware, on trial
                _gone(run, wait)                         # resets by itself
                assert flash.log[-1][0] == "ota_0", flash.log
                fw, mark = _restart(run, rec)            # the bootloader: back to ota_1
                assert fw == "0.2.0" and flash.log[-1][0] == "ota_1", flash.log
                assert flash.log[-1][1].startswith("rollback: ota_0"), flash.log
                st = ota_status(rec, BASE, lambda d: d["state"] == "rolled_back", 30,
                                "rolled back", mark)
                assert st["last"]["version"] == version and want in st["last"]["reason"], st
                totals.append(lifetime(run))
            time.sleep(3)
            truth = ctl.truth()["truth"]["ui3"][0][0] - t0
            assert run.stop() == 0
            totals.append(lifetime(run))
    finally:
        broker.stop()
        srv.stop()
    # the energy: never decreasing across the restarts, never more than the simulator's
    # truth; each of the 3 power cuts loses at most what came after the last save
    assert totals == sorted(totals) and before <= totals[-1], totals
    got = totals[-1] / 1e6
    assert got <= truth * 1.0005 + 0.1, (got, truth)
    assert got >= truth - 3 * (SAVE_S + 1) * LOAD_W / 3600, (got, truth)


@pytest.mark.slow                          # make test-slow (CI runs it)
def test_firmware_update_in_sleep_mode(tmp_path):
    """Sleep mode: the firmware downloaded while stay_awake holds the node up, then the new
    firmware's first boot stays awake until its trial is decided (a deep sleep before it is
    marked valid would be a reset the bootloader goes back at), then it sleeps; its wakes
    boot the same partition. Every Wh counted, once."""
    key, pub = new_key(tmp_path)
    v2 = ota.firmware_bundle(image("0.2.0"), "0.2.0", key)
    srv = OtaServer({"/v2.rbota": v2})
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario("energy.json")))
    bench = hostenv.SimProcess(str(path))
    ctl = bench.client()
    broker = Broker()
    base = "rbnode/sl1"
    cfg = base_config(node={"id": "sl1", "name": "sleeper"}, mode="sleep", period_s=20,
                      save_s=3600, modules=[{"address": "0x50", "name": "ui3"}],
                      wifi={"ssid": "ap", "password": "pw"},
                      mqtt={"host": broker.host, "port": broker.port}, sleep={"awake_s": 4},
                      ota={"enabled": True, "key": pub, "confirm_s": 60, "max_boots": 2})
    node = HostNode(str(tmp_path), bench.address, cfg, bench_client=ctl, ota=True)
    for m in ctl.modules()["modules"]:
        for ch in range(m["channels"]):
            ctl.set_load(module=m["name"], ch=ch, load=0)
    ctl.set_load(module="ui3", ch=0, load=900.0)
    lives = []

    def run_once(p=None):
        p = p or node.start(stdout=subprocess.PIPE)
        out = p.communicate(timeout=120)[0].decode()
        assert "Traceback" not in out, out
        cause = node.finish()
        assert cause is not None, out
        doc = rtc_state(node.board)
        lives.append(sum(m["ch"][0][0] for m in doc["meters"].values()) / 1e6)
        return out, cause

    try:
        with Recorder(broker) as rec:
            run_once()                                    # cold boot: the primer
            t0 = ctl.truth()["at_latch"]["ui3"][0]
            rec.publish(base + "/stay_awake", "on", retain=True)
            mark = rec.mark()
            p = node.start(stdout=subprocess.PIPE)
            ota_status(rec, base, lambda d: True, 60, "the ota status at the wake", mark)
            r = command(rec, base, "ota", {"url": srv.url("/v2.rbota"), "version": "0.2.0"},
                        "up", 20)
            assert r["ok"], r
            r = command(rec, base, "stay_awake", {"on": False}, "off", 20)
            assert r["ok"], r
            out, cause = run_once(p)
            assert cause == SOFT and "installed in partition ota_1" in out, out
            # the new firmware's boot: awake through its trial, then asleep
            mark = rec.mark()
            out, cause = run_once()
            assert node.flash.log[-1] == ("ota_1", "otadata seq 2"), node.flash.log
            st = ota_status(rec, base, lambda d: d["state"] == "ok", 30, "0.2.0 healthy", mark)
            assert st["version"] == "0.2.0", st
            assert cause == DEEPSLEEP, out
            assert [r and r["state"] for r in node.flash.records()] == ["VALID", None], \
                node.flash.records()
            for _ in range(2):                            # its wakes: the same partition
                out, cause = run_once()
                assert cause == DEEPSLEEP and node.flash.log[-1][0] == "ota_1", node.flash.log
            truth = ctl.truth()["at_latch"]["ui3"][0] - t0
    finally:
        node.kill()
        broker.stop()
        bench.stop()
        srv.stop()
    assert lives == sorted(lives), lives
    got = lives[-1] - lives[0]
    assert abs(got - truth) <= truth * 0.001 + 0.01, (got, truth, lives)
