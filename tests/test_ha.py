"""A real Home Assistant (issue 18): what HA makes of the node's discovery, not our picture of it.

HA 2025.4.4 from the cached venv of tools/ha_env.py (`make ha-setup`), in a network namespace
of its own, a private mosquitto, the real node on the unix port. Skipped with one line when
the venv or root (for the namespace) is missing. Where tests/ha_rules.py disagrees with
what HA does here, HA wins.
"""
import json
import os
import subprocess
import time

import pytest

from nodeharness import NodeRun, scenario
from otaserver import OtaServer, command, make_bundle, new_key, reboot
from test_mqtt import BASE, MODULES, net_config
from test_sleep import net_config as sleep_config
from tools import ha_env
from tools.host import hostenv
from tools.host.broker import Broker, free_port
from tools.host.hostrun import HostNode
from tools.host.mqttrec import Recorder

WHY = ha_env.missing() or (None if os.geteuid() == 0 else
                           "real-HA tests skipped: a network namespace needs root")
pytestmark = [pytest.mark.skipif(WHY is not None, reason=WHY or ""), pytest.mark.slow,
              pytest.mark.xdist_group("ha")]   # one HA at a time: ~1 GB of RAM each

if WHY is None:
    from tools import ha


@pytest.fixture
def world(tmp_path):
    ns = ha.Netns()
    port = free_port()
    broker = Broker(extra=ha.listen_extra(ns.host_addr, port))
    hass = ha.HomeAssistant(tmp_path / "ha", ns.host_addr, port, ns)
    try:
        hass.start()
        yield broker, hass
    finally:
        hass.stop()
        broker.stop()
        ns.down()


def _live(states):
    return len(states) and all(v["state"] not in ("unknown", "unavailable")
                               for k, v in states.items() if "rssi" not in k)


def _ours(states):
    return {k: v for k, v in states.items() if k.startswith("sensor.") and "backup" not in k}


def test_continuous_mode_in_home_assistant(tmp_path, world):
    """Every entity HA made: unit, device class, state class and a live state; the Energy
    dashboard's own validation clean for every energy sensor; no MQTT or sensor warning in
    HA's log; unavailable once the node stops; discovery again after HA restarts."""
    broker, hass = world
    cfg = net_config(broker, modules=MODULES + [], node={"name": "Zähler Haus"},
                     tariffs=[{"name": "peak", "windows": [{"days": "mon-fri", "from": "07:00",
                                                            "to": "22:00"}]},
                              {"name": "off-peak"}])
    cfg["modules"][0] = dict(cfg["modules"][0], name="Küche")     # a display name, no id
    key, pub = new_key(tmp_path)                                   # the update entity
    cfg["ota"] = {"enabled": True, "key": pub}
    srv = OtaServer({"/v2.rbota": make_bundle(tmp_path, "0.2.0")})
    srv.rate = 40000                        # a few seconds: HA sees the update in progress
    (tmp_path / "node").mkdir()
    with NodeRun(tmp_path / "node", scenario("energy.json"), cfg) as run:
        run.ctl.set_load(module="ui3", ch=0, load=1500)
        run.ctl.set_load(module="basic-pv", ch=0, load=-800)
        # ui3 (UI3): u f + 3 x (i p s q pf ei) = 20; basic-pv (UI1, bidirectional): u f +
        # i p s q pf ei ee = 9; currents (I3): f + 3 i = 4; the node: 13 diagnostics.
        # The usage topic: per channel and direction today, yesterday, this month and the 2
        # tariffs, per module 4 demand figures: ui3 3 x 5 + 4, basic-pv 2 x 5 + 4
        want = 20 + 9 + 4 + 13 + 19 + 14
        try:
            st = hass.wait(lambda s: len(_ours(s)) >= want and all(
                v["state"] not in ("unknown", "unavailable") for k, v in _ours(s).items()
                if "rssi" not in k), timeout=90, what="%d live rbnode entities" % want)
        except AssertionError:
            print({k: v["state"] for k, v in _ours(hass.states()).items()})
            raise
        ours = _ours(st)
        assert len(ours) == want, sorted(ours)
        classes = {}
        for eid, s in ours.items():
            a = s["attributes"]
            classes.setdefault(a.get("device_class"), set()).add(
                (a.get("unit_of_measurement"), a.get("state_class")))
        # yesterday's totals have no state class: HA keeps no statistics of them
        assert classes["energy"] == {("kWh", "total_increasing"), ("kWh", None)}, classes
        assert classes["power"] == {("W", "measurement")}
        assert classes["voltage"] == {("V", "measurement")}
        assert classes["current"] == {("A", "measurement")}
        energy = sorted(eid for eid, s in ours.items()
                        if s["attributes"].get("device_class") == "energy" and
                        s["attributes"].get("state_class") == "total_increasing")
        # lifetime 3 + 2, per tariff 2 x (3 + 2), today and this month 2 x (3 + 2)
        assert len(energy) == 5 + 10 + 10, energy
        assert {"sensor.kuche_house_energy_import_peak", "sensor.kuche_house_energy_import_off_peak",
                "sensor.basic_pv_energy_export_today",
                "sensor.basic_pv_energy_export_this_month"} <= set(energy), energy
        devices, = hass.ws({"type": "config/device_registry/list"})
        names = {d["name"] for d in devices if any("rbnode" in i[1] for i in d["identifiers"])}
        assert {"Zähler Haus", "Küche", "basic-pv", "currents"} <= names, names
        # names as HA users read them: the device's, then the entity's in sentence case
        friendly = {v["attributes"].get("friendly_name") for v in ours.values()}
        assert {"Küche House power", "Küche Channel 3 power", "Küche Voltage",
                "basic-pv Energy export", "Zähler Haus WiFi signal"} <= friendly, friendly
        # the Energy dashboard: every energy sensor as a grid source, HA's own validation
        prefs = {"energy_sources": [{"type": "grid", "flow_from": [
            {"stat_energy_from": e, "stat_cost": None, "entity_energy_price": None,
             "number_energy_price": None} for e in energy if "export" not in e],
            "flow_to": [{"stat_energy_to": e, "stat_compensation": None,
                         "entity_energy_price": None, "number_energy_price": None}
                        for e in energy if "export" in e], "cost_adjustment_day": 0}],
            "device_consumption": []}
        saved, = hass.ws(dict(prefs, type="energy/save_prefs"))
        assert "error" not in saved, saved
        time.sleep(3)
        result, = hass.ws({"type": "energy/validate"})
        issues = [i for src in result["energy_sources"] for i in src]
        # HA compiles statistics every 5 minutes: until its first run every new sensor is
        # "statistics_not_defined" (the dashboard says so too); every other check must pass
        # (recorded, numeric, not negative, device class, unit, state class)
        assert all(i["type"] == "statistics_not_defined" for i in issues), issues
        listed = {e for i in issues for e, _ in i["affected_entities"]}
        assert listed <= set(energy), listed
        # HA restarts: it says "online" on its status topic, the node announces again
        before = set(_ours(hass.states()))
        hass.restart()
        hass.wait(lambda s: set(_ours(s)) == before and all(
            v["state"] not in ("unknown", "unavailable") for k, v in _ours(s).items()
            if "rssi" not in k), timeout=60, what="the entities back after a restart")
        # the node's update entity: installed and latest 0.1.0, then an update through it
        upd = "update.zahler_haus_firmware"
        u = hass.wait(lambda s: upd in s and s[upd]["state"] == "off", timeout=30,
                      what="the update entity")[upd]["attributes"]
        assert (u["installed_version"], u["latest_version"], u["device_class"],
                u["in_progress"]) == ("0.1.0", "0.1.0", "firmware", False), u
        with Recorder(broker) as rec:
            r = command(rec, BASE, "ota", {"url": srv.url("/v2.rbota"), "version": "0.2.0"},
                        "ha", 15)
            assert r["ok"], r
            u = hass.wait(lambda s: s[upd]["attributes"].get("in_progress") is True, timeout=30,
                          what="the update in progress")[upd]["attributes"]
            assert u["latest_version"] == "0.2.0" and u["update_percentage"] is not None, u
            reboot(run, rec)
        u = hass.wait(lambda s: s[upd]["attributes"].get("installed_version") == "0.2.0" and
                      s[upd]["state"] == "off" and not s[upd]["attributes"].get("in_progress"),
                      timeout=90, what="0.2.0 installed")[upd]["attributes"]
        assert u["latest_version"] == "0.2.0", u
        assert run.stop() == 0
    srv.stop()
    # the node's offline will: every entity unavailable within seconds
    hass.wait(lambda s: all(v["state"] == "unavailable" for v in _ours(s).values()),
              timeout=20, what="the node's entities unavailable")
    problems = hass.log_problems()
    assert not problems, "\n".join(problems)


def test_sleep_mode_in_home_assistant(tmp_path, world):
    """The battery logger: HA accepts its discovery (expire_after per sensor: HA refused it
    at the device level, and sleep mode made no entity at all), its values arrive at each
    wake and stay valid between wakes ("asleep" is no unavailability), no log problems."""
    broker, hass = world
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario("energy.json")))
    bench = hostenv.SimProcess(str(path))
    try:
        ctl = bench.client()
        cfg = sleep_config(broker, mode="sleep", period_s=60, modules=[
            {"address": "0x50", "name": "Küche"}, {"address": "0x51", "id": "pv",
                                                   "name": "Solar ☀", "bidirectional": True}])
        node = HostNode(str(tmp_path), bench.address, cfg, bench_client=ctl)
        ctl.set_load(module="ui3", ch=0, load=800)
        for wake in range(3):                 # the cold boot, then two ordinary wakes
            out = node.start(stdout=subprocess.PIPE).communicate(timeout=90)[0].decode()
            assert node.finish() is not None, out
        # UI3: u f + 3 x (i p s q pf ei) = 20; UI1 (import only in sleep mode): 8; node: 13
        # and the usage topic: UI3 3 x 3 + 4 demand figures, UI1 3 + 4
        want = 20 + 8 + 13 + 13 + 7
        st = hass.wait(lambda s: len(_ours(s)) >= want and _live(_ours(s)), timeout=60,
                       what="%d live entities of the sleeping node" % want)
        assert len(_ours(st)) == want, sorted(_ours(st))
        time.sleep(5)                         # asleep: the values stay valid until they expire
        assert _live(_ours(hass.states()))
        problems = hass.log_problems()
        assert not problems, "\n".join(problems)
    finally:
        bench.stop()
