# The pure parts of the connectivity layer on the unix port: outbox, discovery, commands, kWh.
import asyncio
import json

from mptest import eq, raises, run

from rbnode.net import discovery
from rbnode.net.commands import CommandError, parse
from rbnode.integrate import kwh, parse_kwh_uwh
from rbnode.net.outbox import Outbox
from rbnode.sleep.backlog import Backlog


def test_outbox_values_coalesce_records_drop_oldest_results_kept():
    box = Outbox(3)
    box.latest("a/energy", "1", True, 1)
    box.latest("a/state", "s1")
    box.latest("a/energy", "2", True, 1)          # replaces, keeps its place
    eq(len(box), 2)
    for i in range(5):
        box.put("ev", str(i))
    eq(box.dropped, 2)
    box.put("res", "r", keep=True)                 # full: the oldest event goes, not results
    box.put("res", "r2", keep=True)
    eq(box.dropped, 4)
    out = []
    while len(box):
        out.append(box.pop()[:2])
    eq(out, [("a/energy", "2"), ("a/state", "s1"), ("ev", "4"), ("res", "r"), ("res", "r2")])
    box.latest("x", "1")
    box.latest("y", "1")
    box.latest("x", "2", last=True)                # moved behind y
    eq([box.pop()[0], box.pop()[0]], ["y", "x"])
    eq(box.pop(), None)


def test_outbox_get_waits_and_room_waits():
    box = Outbox(2)
    got = []

    async def consumer():
        got.append(await box.get())

    async def main():
        t = asyncio.create_task(consumer())
        await asyncio.sleep_ms(10)
        eq(got, [])
        box.put("t", "p")
        await asyncio.sleep_ms(10)
        box.put("t", "1", keep=True)
        box.put("t", "2", keep=True)
        w = asyncio.create_task(box.room())
        await asyncio.sleep_ms(50)
        eq(w.done(), False)
        box.pop()
        await asyncio.sleep_ms(50)
        eq(w.done(), True)
        await t
    asyncio.run(main())
    eq(got, [("t", "p", False, 0)])


def _module(longest, variant="UI3", export=True):
    """At the config's bounds (config.py): id 24, name 48 bytes, channel names 32 bytes, of
    characters JSON doubles (quotes, backslashes) or of multi-byte ones."""
    n = int(variant[-1])
    name, chan = ('"' * 48, "\\" * 32) if longest == "escaped" else (
        ("ü" * 24, "☀" * 10) if longest == "utf8" else ("mod", "c"))
    return {"id": "m" * (24 if longest else 3), "name": name,
            "uid": "e1000000000000000000beef", "variant": variant,
            "fw": "1.3", "channels": n, "channel_names": [chan] * n,
            "voltage": variant.startswith("U"), "export": export,
            "tariffs": ["t" * 15 + str(i) for i in range(4)] if longest else ["peak", "off"]}


def test_discovery_parts_fit_1_kib_at_the_longest_names():
    for nid, longest in (("rbnode-00beef", None), ("n" * 32, "escaped"), ("n" * 32, "utf8")):
        for variant in ("UI1", "UI2", "UI3", "I1", "I3"):
            mod = _module(longest, variant)
            node_name = {None: "x", "escaped": '"' * 64, "utf8": "ä" * 32}[longest]
            devs = [(oid, [discovery.text(p) for p in parts], most)
                    for oid, parts, most in discovery.devices(
                "b" * (64 if longest else 6), nid,
                {"name": node_name, "sw": "0.1.0", "model": "m"}, [mod])]
            for oid, parts, most in devs:
                seen = []
                for p in parts:
                    if len(p.encode()) > discovery.LIMIT:
                        raise AssertionError("%s: %d bytes" % (oid, len(p.encode())))
                    doc = json.loads(p)
                    seen += list(doc["cmps"])
                    eq(doc["dev"]["ids"], [oid])
                    eq(doc["o"]["name"], "rbnode")
                eq(len(seen), len(set(seen)))
                eq(len(seen), most)               # every component exactly once
                if len(parts) > most:
                    raise AssertionError("more parts than components")
            comps = [c for oid, parts, most in devs[1:] for p in parts
                     for c in json.loads(p)["cmps"]]
            n = int(variant[-1])
            if variant.startswith("U"):
                eq(len(comps), 2 + 7 * n + 2 * n * (3 + len(mod["tariffs"])) + 4)
            else:
                eq(sorted(comps), sorted(["f"] + ["i%d" % c for c in range(n)]))


def test_discovery_names_and_ids():
    mod = {"id": "sub-panel", "name": "Sub panel Küche", "uid": "ab12", "channels": 2,
           "channel_names": ["oven", ""], "voltage": True, "export": False,
           "tariffs": ["peak", "off-peak"]}
    meas = list(discovery.module_components("node1", mod))
    energy = list(discovery.module_components("node1", mod, True))
    usage = list(discovery.usage_components("node1", mod))
    eq(len(meas) + len(energy) + len(usage), discovery.component_count(mod))
    u = dict(usage)
    eq([k for k, v in usage][:5], ["di0", "yi0", "mi0", "ti_peak0", "ti_off-peak0"])
    eq(u["di1"]["name"], "Channel 2 energy import today")
    eq(u["di1"]["val_tpl"], "{{value_json.day.imp[1]}}")
    eq(u["di1"]["stat_cla"], "total_increasing")
    eq("stat_cla" in u["yi0"], False)                # yesterday: no statistics
    eq(u["ti_off-peak0"]["val_tpl"], "{{value_json.t['off-peak'].imp[0]}}")
    eq(u["ti_off-peak0"]["def_ent_id"], "sensor.node1_sub_panel_oven_energy_import_off_peak")
    eq((u["dw"]["dev_cla"], u["dw"]["unit_of_meas"], u["dw"]["stat_cla"]),
       ("power", "W", "measurement"))
    c = dict(meas)
    eq(c["p0"]["name"], "Oven power")
    eq(c["p1"]["name"], "Channel 2 power")
    eq(c["p0"]["uniq_id"], "node1_ab12_p0")
    eq(c["p0"]["def_ent_id"], "sensor.node1_sub_panel_oven_power")
    eq([k for k, v in energy], ["ei0", "ei1"])     # no export entity without bidirectional
    eq(dict(energy)["ei1"]["val_tpl"], "{{value_json.imp[1]}}")
    eq(discovery.topic("homeassistant", "node1_ab12", 0), "homeassistant/device/node1_ab12/config")
    eq(discovery.topic("homeassistant", "node1_ab12", 2), "homeassistant/device/node1_ab12_3/config")


def test_kwh_text_is_exact():
    eq(kwh(0), "0.000000")
    eq(kwh(1234567891234567), "1234567.891234")        # 1.2 GWh: every mWh digit kept
    eq(parse_kwh_uwh("1234567.891234"), 1234567891234000)
    eq(parse_kwh_uwh(12), 12 * 10**9)
    eq(parse_kwh_uwh("0.5"), 500000000)
    for bad in ("-1", "1e3", "", "abc", "1.2.3", True, None, [1]):
        eq(parse_kwh_uwh(bad), None)


def test_command_parse_errors_name_the_problem():
    eq(parse("latch", "{}"), {})
    eq(parse("set_total", '{"id": 1, "module": "m", "channel": 1, "import_kwh": "2.5"}'),
       {"module": "m", "channel": 1, "import_kwh": 2500000000})
    for name, payload, text in (
            ("nope", "{}", "unknown command"),
            ("latch", "", "empty payload"),             # what clears a retained message
            ("reboot", " \n", "empty payload"),
            ("latch", "{x", "not JSON"),
            ("latch", "[1]", "JSON object"),
            ("latch", '{"a": 1}', "unknown key 'a'"),
            ("set_total", '{"module": "m"}', "'channel' missing"),
            ("set_total", '{"module": "m", "channel": 3}', "channel = 3"),
            ("set_total", '{"module": "m", "channel": true}', "channel = true"),
            ("set_total", '{"module": "m", "channel": 0, "import_kwh": -1}', "import_kwh = -1"),
            ("set_ct", '{"module": "m", "channel": 0, "amps": 7}', "amps = 7"),
            ("stay_awake", '{"on": 1}', "on = 1"),
            ("latch", "{" * 600, "payload of 600 bytes")):
        try:
            parse(name, payload)
        except CommandError as e:
            if text not in str(e):
                raise AssertionError("%r not in %r" % (text, str(e)))
        else:
            raise AssertionError("%s %s accepted" % (name, payload))
    raises(CommandError, parse, "set_sensor_class", '{"module": "m", "class": "x"}')


class _Net:
    cfg = {"mqtt": {"allow_remote_config": False, "allow_totals": False}}

    def __init__(self):
        self.results = []

    def result(self, doc):
        self.results.append(doc)


def test_every_bad_command_gets_an_answer():
    from rbnode.net.commands import Commands
    net = _Net()
    cmds = Commands(None, net)
    for name, payload in (("latch", b"[" * 200 + b"]" * 200), ("latch", b"\xff"),
                          ("set_ct", b'{"id": "a", "module": "m", "channel": 0, "amps": 5}'),
                          ("latch", b"x" * 513),
                          ("set_total", b'{"id": "t", "module": "m", "channel": 0, '
                                        b'"import_kwh": 5}'),
                          ("restore_totals", b'{"id": "u", "module": "m", "use": "broker"}')):
        cmds.handle(name, payload)
    cmds.handle("latch", b'{"id": "kept"}', True)
    cmds.handle("latch", b"")
    cmds.too_long("latch", 70000)
    eq([r["ok"] for r in net.results], [False] * 9)
    eq(net.results[6]["id"], "kept")
    for r, text in zip(net.results[6:], ("retained", "empty payload", "70000 bytes")):
        if text not in r["error"]:
            raise AssertionError((text, r))
    eq(net.results[2]["id"], "a")
    if "remote configuration is off" not in net.results[2]["error"]:
        raise AssertionError(net.results[2])
    for r in net.results[4:6]:                   # totals change only with mqtt.allow_totals
        if "mqtt.allow_totals" not in r["error"]:
            raise AssertionError(r)


def test_rate_limits_a_burst_then_one_per_interval():
    from rbnode.net.commands import Rate
    r = Rate({"latch": (3, 10)})
    t = 1000
    eq([r.wait_s("latch", t) for _ in range(5)], [0, 0, 0, 10, 10])
    eq(r.wait_s("latch", t + 4000), 6)
    eq(r.wait_s("latch", t + 10000), 0)          # one more after one interval
    eq(r.wait_s("latch", t + 10000), 10)
    eq([r.wait_s("latch", t + 10 ** 6) for _ in range(4)], [0, 0, 0, 10])   # idle: a burst
    from time import ticks_add
    r.due["latch"] = ticks_add(t, 10 ** 8)       # a stamp from before a ticks wrap
    eq(r.wait_s("latch", t), 0)


def test_totals_commands_are_bounded():
    eq(parse("set_total", '{"module": "m", "channel": 0, "import_kwh": "9999999999.5"}'),
       {"module": "m", "channel": 0, "import_kwh": 9999999999500000000})
    for payload in ('{"module": "m", "channel": 0, "import_kwh": "1%s"}' % ("0" * 400),
                    '{"module": "m", "channel": 0, "import_kwh": 10000000000}',
                    '{"module": "m", "channel": 0, "import_kwh": 1e300}'):
        e = raises(CommandError, parse, "set_total", payload)
        if "0 to 9999999999" not in str(e):
            raise AssertionError(str(e))
    eq(parse("restore_totals", '{"module": "m", "use": "ledger"}'), {"module": "m", "use": "ledger"})
    raises(CommandError, parse, "restore_totals", '{"module": "m", "use": "mine"}')


def test_retained_totals_parse_whatever_the_spacing():
    from rbnode.net.payload import energy_json, parse_energy
    ours = energy_json("ab12", [[1234567891234000, 5], [0, 10**15]])
    want = ("ab12", [1234567891234000, 0], [0, 10**15])
    eq(parse_energy(ours), want)
    eq(parse_energy('{ "exp" : [ 0.000000 ,\n 1000000.000000 ],  "uid":"ab12",\t"imp": '
                    '[1234567.891234, 0] }'), want)
    for bad in ("", "[]", '{"uid": 5, "imp": [1], "exp": [1]}', '{"uid": "a", "imp": [-1], '
                '"exp": [0]}', '{"uid": "a", "imp": [1e3], "exp": [0]}', "\xff", '{"uid": "a"}'):
        raises(ValueError, parse_energy, bad)



def test_ca_file_pem_becomes_der():
    from binascii import b2a_base64

    from rbnode.net.link import ca_der
    der = bytes(range(256)) * 3                  # any DER body: 768 bytes, 1024 in base64
    b64 = b2a_base64(der).strip()
    pem = b"subject=CN = test\n-----BEGIN CERTIFICATE-----\n"
    pem += b"\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    pem += b"\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAAAA\n"
    eq(ca_der(pem), der)                         # the first of a bundle, header text skipped
    eq(ca_der(der), der)                         # DER is passed through
    e = raises(ValueError, ca_der, pem[:200])
    eq(str(e), "mqtt.ca_file: a PEM certificate without its END line")
    e = raises(ValueError, ca_der, b"-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----")
    eq(str(e), "mqtt.ca_file: the PEM certificate is not valid base64")


def _exists(path):
    import os
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _recs(a, b):
    return [("rbnode/n/m/period", '{"wake": %d}' % i) for i in range(a, b)]


def test_backlog_keeps_order_bound_and_survives_a_torn_append():
    import os
    for f in ("bl.jsonl", "bl.jsonl.new"):
        try:
            os.remove(f)
        except OSError:
            pass
    b = Backlog("bl.jsonl", 10)
    eq(len(b), 0)
    eq(list(b.records()), [])
    b.append(_recs(0, 4))
    b.append(_recs(4, 6))
    eq(list(Backlog("bl.jsonl", 10).records()), _recs(0, 6))     # from flash, in order
    b.consume(2)                                                 # two delivered
    eq(list(b.records()), _recs(2, 6))
    b.append(_recs(6, 15))                                       # 13 > 10: oldest 3 go
    eq(list(b.records()), _recs(5, 15))
    eq((len(b), b.dropped), (10, 3))
    with open("bl.jsonl", "a") as f:                             # a power cut mid-append
        f.write('rbnode/n/m/period {"wake": 1')
    b2 = Backlog("bl.jsonl", 20)
    eq((len(b2), b2.dropped), (10, 1))
    b2.append(_recs(15, 16))                                     # ends the torn line first
    eq(list(Backlog("bl.jsonl", 20).records()), _recs(5, 16))
    b2.consume(11)
    eq((len(b2), _exists("bl.jsonl")), (0, False))        # nothing left: no file
    b0 = Backlog("bl.jsonl", 0)                                  # store and forward off
    b0.append(_recs(0, 2))
    eq((b0.dropped, _exists("bl.jsonl")), (2, False))


run(globals())
