"""Over-the-air updates in sleep mode (issue 22): the battery logger on the unix port, the
simulator's time fast-forwarded through each deep sleep, a real mosquitto, the real mqtt_as, a
local HTTP server, bundles made by `make ota-bundle`.

One node through: two ordinary wakes; the retained stay_awake flag keeps the third up; the
`ota` command downloads between its periods (the flag turned off meanwhile: the update keeps
the node up) and resets it into 0.2.0, which is kept at its first wake (a period booked, the
broker connected). Then a version that never connects:
its wakes are deep-sleep wakes, which no boot count sees, so it is rolled back when
ota.confirm_s has gone by on the RTC, at a wake, by itself. Then 0.2.0 sleeps and wakes
again from its slot. Through all of it: the energy against the simulator's truth (nothing
lost or counted twice across the resets), totals that never decrease.
"""
import json
import os
import subprocess

import pytest

from nodeharness import base_config, rtc_state, scenario
from otaserver import OtaServer, command, make_bundle, new_key, ota_status, variant
from tools.host import hostenv
from tools.host.broker import Broker
from tools.host.hostrun import DEEPSLEEP, SOFT, HostNode
from tools.host.mqttrec import Recorder

BASE = "rbnode/sl1"
PERIOD_S = 20
CONFIRM_S = 60              # three periods: the bad version gets three deep-sleep wakes
LOAD_W = 900.0


def _config(broker, pub):
    return base_config(node={"id": "sl1", "name": "sleeper"}, mode="sleep", period_s=PERIOD_S,
                       save_s=3600, modules=[{"address": "0x50", "name": "ui3"}],
                       wifi={"ssid": "ap", "password": "pw"},
                       mqtt={"host": broker.host, "port": broker.port},
                       sleep={"awake_s": 4},
                       ota={"enabled": True, "key": pub, "confirm_s": CONFIRM_S,
                            "max_boots": 2})


def _status(rec, pred, timeout, what, start=0):
    return ota_status(rec, BASE, pred, timeout, what, start)


def _cmd(rec, name, payload, rid):
    return command(rec, BASE, name, payload, rid, timeout=20)


def _life(node):
    """The lifetime import of channel 1 in RTC memory (the sleep state), Wh."""
    doc = rtc_state(node.board)
    (m,) = doc["meters"].values()
    return m["ch"][0][0] / 1e6


@pytest.mark.slow                          # make test-slow (CI runs it)
def test_update_in_sleep_mode(tmp_path):
    key, pub = new_key(tmp_path)
    v2 = make_bundle(tmp_path, "0.2.0")
    deaf = variant(tmp_path, key, "0.3.0", "rbnode/net/link.py",
                   lambda s: s.replace('"port": m["port"]', '"port": 1'))
    srv = OtaServer({"/v2.rbota": v2, "/deaf.rbota": deaf})
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario("energy.json")))
    bench = hostenv.SimProcess(str(path))
    ctl = bench.client()
    broker = Broker()
    node = HostNode(str(tmp_path), bench.address, _config(broker, pub), bench_client=ctl)
    for m in ctl.modules()["modules"]:
        for ch in range(m["channels"]):
            ctl.set_load(module=m["name"], ch=ch, load=0)
    ctl.set_load(module="ui3", ch=0, load=LOAD_W)
    logs, lives = [], []

    def wake():
        """One whole wake (it ends in a deep sleep or a reset): its log."""
        out = node.start(stdout=subprocess.PIPE).communicate(timeout=90)[0].decode()
        logs.append(out)
        assert "Traceback" not in out, out
        assert node.finish() is not None, out
        lives.append(_life(node))
        return out

    def awake():
        """A wake that stays up (stay_awake): the process, its log read at the end."""
        return node.start(stdout=subprocess.PIPE)

    def ended(p, cause):
        out = p.communicate(timeout=90)[0].decode()
        logs.append(out)
        assert "Traceback" not in out, out
        assert node.finish() == cause, (node.boots[-1], out[-3000:])
        lives.append(_life(node))
        return out

    try:
        with Recorder(broker) as rec:
            wake()                                       # cold boot: the primer
            base = ctl.truth()["at_latch"]["ui3"][0]
            wake()
            assert node.cause == DEEPSLEEP
            # stay_awake on: the next wake stays up, and takes the command
            rec.publish(BASE + "/stay_awake", "on", retain=True)
            mark = rec.mark()
            p = awake()
            st = _status(rec, lambda d: True, 60, "the ota status at the wake", mark)
            assert st["state"] == "idle" and st["version"] == "0.1.0", st
            srv.rate = len(v2) // 3                      # a download of about 3 s
            r = _cmd(rec, "ota", {"url": srv.url("/v2.rbota"), "version": "0.2.0"}, "up")
            assert r["ok"] and r["to"] == "0.2.0", r
            # the flag off while it downloads: the update keeps the node up
            r = _cmd(rec, "stay_awake", {"on": False}, "off")
            assert r["ok"], r
            _status(rec, lambda d: d["state"] == "rebooting", 60, "rebooting", mark)
            srv.rate = 0
            out = ended(p, SOFT)                         # a reset into the new version
            assert "staying awake (an update is downloading)" in out, out
            assert "installed in slot b: restarting" in out, out
            rec.publish(BASE + "/stay_awake", "on", retain=True)
            # 0.2.0: a trial, decided at its first wake (still kept up by the flag)
            mark = rec.mark()
            p = awake()
            st = _status(rec, lambda d: d["state"] == "ok", 60, "0.2.0 healthy", mark)
            assert st["version"] == "0.2.0" and st["last"]["result"] == "ok", st
            # a version that never connects: installed from 0.2.0, then on its own
            r = _cmd(rec, "ota", {"url": srv.url("/deaf.rbota"), "version": "0.3.0"}, "deaf")
            assert r["ok"] and r["from"] == "0.2.0" and r["slot"] == "a", r
            _status(rec, lambda d: d["state"] == "rebooting", 60, "rebooting again", mark)
            ended(p, SOFT)
            deaf_wakes = []
            for _ in range(8):                           # 0.3.0's wakes, until it gives up
                out = wake()
                deaf_wakes.append(node.cause)
                assert "ota: version 0.3.0" in out, out
                if node.cause == SOFT:
                    break
            assert deaf_wakes[-1] == SOFT and DEEPSLEEP in deaf_wakes, deaf_wakes
            assert "not healthy within 60 s (missing: a broker connection)" in out, out
            assert len(deaf_wakes) >= CONFIRM_S // PERIOD_S, deaf_wakes
            # 0.2.0 again, says why; then the flag off: it sleeps, and wakes from its slot
            mark = rec.mark()
            p = awake()
            st = _status(rec, lambda d: d["state"] == "rolled_back", 60, "rolled back", mark)
            assert st["version"] == "0.2.0" and st["last"]["version"] == "0.3.0", st
            assert "missing: a broker connection" in st["error"], st
            r = _cmd(rec, "stay_awake", {"on": False}, "sleep")
            assert r["ok"], r
            ended(p, DEEPSLEEP)
            mark = rec.mark()
            wake()
            h = rec.wait(lambda m: m.topic == BASE + "/health" and m.json().get("fw"),
                         timeout=10, start=mark, what="health of the last wake").json()
            assert h["fw"] == "0.2.0", h
            truth = ctl.truth()["at_latch"]["ui3"][0] - base
    finally:
        node.kill()
        broker.stop()
        bench.stop()
        srv.stop()
    # every Wh of the sleeps and of the resets counted, once; never decreasing
    print("causes of the boots:", [b[0] for b in node.boots], "lifetime", lives[-1], "Wh, truth",
          truth)
    assert lives == sorted(lives), lives
    # the ledger and the RTC state kept together before each reset: no wake finds them apart
    assert not [o for o in logs if "older than expected" in o], logs
    got = lives[-1]
    assert abs(got - truth) <= truth * 0.001 + 0.01, (got, truth)
    assert os.path.exists(os.path.join(node.fs, "ota", "b", "MANIFEST"))
