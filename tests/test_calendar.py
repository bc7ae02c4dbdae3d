"""Tariffs, days and the clock on the real node (issue 21): the unix port, the simulator, a
real mosquitto and a local NTP server whose clock the test sets.

One run of about two minutes crosses, on the node's clock: time invalid at boot (the NTP
server silent), then valid at 23:59:50 on a Saturday (sync_time); local midnight, where a
tariff window begins (00:00-00:01); a DST change at 00:01 that lands the wall clock inside
another window (01:01, "shoulder"); a step of the load (the period's largest window power);
a clock jump of +1 h at a sync (sync_time) that ends the shoulder window; set_tariff forcing
peak for a few seconds, then "auto"; a jump of -1 h back into the shoulder window. The test reads the simulator's ground truth at the host
instants of those boundaries (node time minus the NTP server's offset) and checks:
  - every tariff total against the truth between its boundaries, to one RT window (200 ms
    of the load) at each boundary: a latch that missed its boundary by more fails;
  - the lifetime total is the sum of the tariff totals exactly, and yesterday + today too;
  - the lifetime within 0.05 % of the truth (nothing lost or counted twice across the
    invalid time, midnight, the DST change and the jump);
  - the largest window power of the period with the step, the demand, the usage topic.
"""
import calendar
import time

from nodeharness import NodeRun, base_config, read_ledger, scenario
from tools.host.broker import Broker
from tools.host.mqttrec import Recorder
from tools.host.ntpserver import NtpServer

BASE = "rbnode/rbnode-00beef"
ZONE = "XST-1XDT,M3.5.0/0:01,M10.5.0/3"      # UTC+1; DST from 00:01 on the last Sunday of March
TARIFFS = [{"name": "peak", "windows": [{"days": "sun", "from": "00:00", "to": "00:01"}]},
           {"name": "shoulder", "windows": [{"days": "sun", "from": "00:30", "to": "01:30"}]},
           {"name": "off"}]
SYNC_AT = calendar.timegm((2026, 3, 28, 22, 59, 50))   # Sat 23:59:50 local, at the flip
MIDNIGHT = calendar.timegm((2026, 3, 28, 23, 0, 0))    # and peak from here
DST = calendar.timegm((2026, 3, 28, 23, 1, 0))        # 00:01 XST -> 01:01 XDT: shoulder
LOAD_W = 1000.0
WINDOW_WH = LOAD_W * 0.2 / 3600                        # one RT window of the load


def _wait_until(t_host):
    while time.time() < t_host:
        time.sleep(min(0.05, max(0.0, t_host - time.time())))


def _usage(rec, pred, timeout, what, start=0):
    return rec.wait(lambda m: m.topic == BASE + "/ui3/usage" and pred(m.json()),
                    timeout=timeout, what=what, start=start).json()


def test_tariffs_days_and_clock_on_the_node(tmp_path):
    broker = Broker()
    ntp = NtpServer("silent")
    cfg = base_config(
        modules=[{"address": "0x50", "name": "ui3"}],
        wifi={"ssid": "bench-ap", "password": "x"},
        mqtt={"host": broker.host, "port": broker.port, "health_s": 10},
        time={"tz": ZONE, "ntp": ["127.0.0.1:%d" % ntp.port], "resync_h": 24},
        tariffs=TARIFFS, save_s=600, period_s=14)   # no boundary on the periods' grid
    cfg["mqtt"]["allow_remote_config"] = True          # set_tariff
    try:
        with Recorder(broker) as rec, NodeRun(tmp_path, scenario("energy.json"), cfg) as run:
            ctl = run.ctl
            run.wait_for("module(s) measuring", timeout=60)     # the node sees all the energy
            for m in ctl.modules()["modules"]:
                for ch in range(m["channels"]):
                    ctl.set_load(module=m["name"], ch=ch, load=0)
            ctl.set_load(module="ui3", ch=0, load=LOAD_W)
            u = _usage(rec, lambda d: True, 60, "usage")
            assert (u["time"], u["tariff"]) == ("invalid", "off"), u
            h = rec.wait(lambda m: m.topic == BASE + "/health", timeout=30).json()
            assert h["time"] == "invalid", h
            # the server answers from now on, its clock at SYNC_AT
            ntp.offset = SYNC_AT - time.time()
            ntp.mode = "ok"
            off = ntp.offset
            mark = rec.mark()                  # now, not at the node's next retry
            rec.publish(BASE + "/cmd/sync_time", '{"id": "v"}')
            r = rec.wait(lambda m: m.topic == BASE + "/result", timeout=10, start=mark).json()
            assert r["ok"] is True, r
            u = _usage(rec, lambda d: d["time"] == "ntp", 15, "the time valid", mark)
            assert time.time() + off < MIDNIGHT - 2, "synced too late for the test"
            truth = {}
            for name, t in (("midnight", MIDNIGHT), ("dst", DST)):
                _wait_until(t - off)
                truth[name] = ctl.truth()["truth"]["ui3"][0][0]
            u = _usage(rec, lambda d: d["tariff"] == "shoulder", 15, "shoulder after the DST")
            # a step for 2 s inside a period: its largest window power
            _wait_until(DST + 13 - off)
            ctl.set_load(module="ui3", ch=0, load=3 * LOAD_W)
            time.sleep(2)
            ctl.set_load(module="ui3", ch=0, load=LOAD_W)
            p = rec.wait(lambda m: m.topic == BASE + "/ui3/period" and
                         (m.json().get("max_p_w") or 0) > 2 * LOAD_W, timeout=20,
                         what="the period with the step").json()
            assert abs(p["max_p_w"] - 3 * LOAD_W) < 0.02 * 3 * LOAD_W, p
            _wait_until(DST + 25 - off)
            # +1 h at a sync: 01:01:25 -> 02:01:25, after the shoulder window
            ntp.offset = off + 3600
            mark = rec.mark()
            rec.publish(BASE + "/cmd/sync_time", '{"id": "j"}')
            r = rec.wait(lambda m: m.topic == BASE + "/result", timeout=10, start=mark).json()
            truth["jump"] = ctl.truth()["truth"]["ui3"][0][0]
            assert r["ok"] is True and r["cmd"] == "sync_time", r
            u = _usage(rec, lambda d: d["tariff"] == "off", 10, "off after the jump", mark)
            h = rec.wait(lambda m: m.topic == BASE + "/health" and m.json()["tariff"] == "off",
                         timeout=20, start=mark).json()
            # an external signal: set_tariff puts peak in force, "auto" gives the windows back
            for arg, want in (('"night"', None), ('"peak"', "peak"), ('"auto"', "off")):
                time.sleep(3)
                mark = rec.mark()
                rec.publish(BASE + "/cmd/set_tariff", '{"tariff": %s}' % arg)
                r = rec.wait(lambda m: m.topic == BASE + "/result", timeout=10, start=mark).json()
                truth["set_%s" % want] = ctl.truth()["truth"]["ui3"][0][0]
                if want is None:
                    assert not r["ok"] and "no tariff 'night' (configured: peak, shoulder, off, " \
                        "auto)" in r["error"], r
                else:
                    assert r["ok"] and r["tariff"] == want, r
                    _usage(rec, lambda d: d["tariff"] == want, 10, want, mark)
            # -1 h at a sync: back to 01:01:4x, inside the shoulder window again; the day does
            # not roll back
            time.sleep(2)
            ntp.offset = off
            mark = rec.mark()
            rec.publish(BASE + "/cmd/sync_time", '{"id": "b"}')
            r = rec.wait(lambda m: m.topic == BASE + "/result", timeout=10, start=mark).json()
            truth["back"] = ctl.truth()["truth"]["ui3"][0][0]
            assert r["ok"] is True, r
            _usage(rec, lambda d: d["tariff"] == "shoulder", 10, "shoulder after going back", mark)
            time.sleep(3)
            truth["stop"] = ctl.truth()["truth"]["ui3"][0][0]
            run.stop()
            led = read_ledger(run.fs)
        msgs = rec.since()
    finally:
        broker.stop()
        ntp.stop()
    (m,) = led["meters"].values()
    life = m["ch"][0][0]
    tar = {t: v[0][0] for t, v in m["tar"].items()}
    report = "tariffs %s, lifetime %d µWh, truth %s" % (tar, life, truth)
    # the lifetime is the sum of the tariff totals, exactly; yesterday + today too
    assert sum(v[0][0] for v in m["tar"].values()) == life, report
    assert sum(v[0][1] for v in m["tar"].values()) == m["ch"][0][1], report
    assert m["day"][1][0][0] + m["yday"][1][0][0] == life, (m["day"], m["yday"], report)
    assert m["day"][0] == m["yday"][0] + 1, (m["day"], m["yday"])
    # each tariff against the truth between its boundaries (Wh -> µWh), one window each side
    win = WINDOW_WH * 1e6
    peak_truth = (truth["dst"] - truth["midnight"] + truth["set_off"] - truth["set_peak"]) * 1e6
    assert abs(tar["peak"] - peak_truth) <= 2 * win + 2 * 0.3 * win / 0.2, report
    sh_truth = (truth["jump"] - truth["dst"] + truth["stop"] - truth["back"]) * 1e6
    assert abs(tar["shoulder"] - sh_truth) <= 2 * win + 3 * 0.3 * win / 0.2, report
    today_truth = (truth["stop"] - truth["midnight"]) * 1e6
    assert abs(m["day"][1][0][0] - today_truth) <= 2 * win + 0.3 * win / 0.2, report
    # the lifetime: what the simulator measured (the load set once the node measured), to
    # 0.05 % and the stop's few windows
    assert abs(life - truth["stop"] * 1e6) <= 5e-4 * life + 3 * win, report
    # the health and the usage topic say what the node did
    assert h["time"] == "ntp", h
    assert u["t"]["peak"]["imp"][0] > 0 and u["demand_w"] is not None, u
    assert abs(u["demand_w"] - LOAD_W) < 0.02 * LOAD_W, u
    assert u["demand_day_w"] >= u["demand_w"] - 0.01, u
    assert u["time"] == "ntp" and u["day"]["imp"][0] > 0 and u["yday"]["imp"][0] > 0, u
    assert h["time"] == "ntp" and led["meters"] and m["day"][0] == m["yday"][0] + 1
    print(report)
