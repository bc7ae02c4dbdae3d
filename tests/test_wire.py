"""Hostile input on the wire (issue 17): the real node, the real mqtt_as, a real mosquitto.

- a fuzz of more than 2000 commands (random bytes, invalid UTF-8, empty, 600 B, 64 KB and
  1 MB payloads, deep nesting, huge numbers, gated and rate-limited commands, retained ones,
  floods): no crash, no reboot, no reconnect, a result or a counted drop for each, totals
  equal to the simulator's truth;
- a TLS server that accepts the connection and never answers: the event loop keeps running
  (no watchdog reset), periods keep closing, the attempts back off;
- no secret (WiFi or MQTT password) in anything the node prints, writes or publishes.
"""
import json
import os
import random
import re
import socket
import subprocess
import threading
import time
from types import SimpleNamespace

from nodeharness import NodeRun, read_ledger, scenario, totals_by_name
from test_mqtt import BASE, net_config
from tools.host.broker import Broker
from tools.host.mqttrec import Recorder

CMD = BASE + "/cmd/"


def _fuzz_cases(rng, n):
    """n (command name, payload, kind) cycling through every hostile kind."""
    names = ["latch", "set_total", "set_ct", "set_sensor_class", "discovery", "reboot",
             "stay_awake", "restore_totals", "nosuch", "x" * 200, "küche☀",
             "\u202eevil"]        # (mosquitto refuses control characters in topics)
    kinds = []
    for i in range(n):
        k = i % 16
        name = rng.choice(names)
        if k == 0:
            p = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        elif k == 1:
            p = b'{"id": "u%d", "x": "\xc3\x28\xa0\xa1\xff"}' % i       # invalid UTF-8
        elif k == 2:
            p = rng.choice([b"", b" ", b"\n\t", b"null", b"0", b"[]", b'""', b"{}garbage"])
        elif k == 3:
            p = b'{"id": "n%d", "a": ' % i + b"[" * 240 + b"]" * 240 + b"}"
        elif k == 4:
            d = {}
            for _ in range(120):
                d = {"a": d}
            p = json.dumps({"id": "d%d" % i, "module": d}).encode()
        elif k == 5:
            p = json.dumps({"id": "h%d" % i, "module": "ui3", "channel": 0,
                            "import_kwh": int("9" * rng.randint(11, 400))}).encode()
        elif k == 6:
            p = json.dumps({"id": "f%d" % i, "module": "ui3", "channel": 0, "import_kwh":
                            rng.choice([1e308, -1e-300, 1e19, -0.0])}).encode()
        elif k == 7:
            p = b'{"id": "g%d", "module": "ui3", "channel": 0, "import_kwh": 5000}' % i
            name = "set_total"                                  # gated: allow_totals off
        elif k == 8:
            p = b'{"id": "c%d", "module": "ui3", "channel": 0, "amps": 50}' % i
            name = "set_ct"                                     # gated
        elif k == 9:
            p = b'{"id": "l%d"}' % i                          # valid: rate limits
            name = rng.choice(["latch", "discovery", "stay_awake"])
            if name == "stay_awake":
                p = b'{"id": "s%d", "on": false}' % i
        elif k == 10:
            p = b'{"id": "r%d", "now": 1}' % i                # reboot, malformed
            name = "reboot"
        elif k == 11:
            p = b"x" * rng.choice([513, 600, 1000])            # over the command bound
        elif k == 12:
            p = json.dumps({"id": "i%d" % i, "module": "\u202e\u200bui3\x00",
                            "channel": 0, "on": True}, ensure_ascii=False).encode()
        elif k == 13:
            p = b'{"id": ' + b'"' + b"\xe2\x98\x80" * 300 + b'"}'    # a 900-byte id
        elif k == 14:
            p = rng.choice([b'{"id": 1e999, "id": {"x": 1}, "module": "ui3"}',
                            b'{"id": "s\\ud800%d", "module": "\\udfff", "channel": 0}' % i])
        else:
            p = b'{"id": "q%d", "channel": 99999999999999999999999999, "module": []}' % i
        kinds.append((name, p, k))
    return kinds


def test_a_command_fuzz_costs_nothing_and_every_command_is_answered_or_counted(tmp_path):
    """2100+ hostile commands on a running node: each gets an error result or is counted as
    dropped in health (mqtt_as's 16-message queue overflows under a flood: results go out
    one at a time, each waiting for its PUBACK); 64 KB and 1 MB messages are read in small
    pieces and thrown away (no MemoryError, no reconnect); nothing changes a total."""
    rng = random.Random(17)
    broker = Broker(extra="max_queued_messages 100000\n")     # the broker itself drops none
    cfg = net_config(broker, period_s=30, mqtt={"health_s": 10})
    sent = 0
    oversize = 0
    try:
        with Recorder(broker) as rec:
            # retained before the node is up: delivered at its connect, with the retain flag
            for topic, payload in ((CMD + "reboot", b'{"id": "ret-reboot"}'),
                                   (CMD + "latch", b'{"id": "ret-latch"}'),
                                   (CMD + "big", b"{" * 100000),
                                   (BASE + "/ghost/energy", b"[" * 300000)):
                rec.publish(topic, payload, retain=True)
            sent, oversize = 3, 1
            mark = rec.mark()
            with NodeRun(tmp_path, scenario("energy.json"), cfg) as run:
                run.ctl.set_load(module="ui3", ch=0, load=2000)
                run.ctl.set_load(module="basic-pv", ch=0, load=-700)

                def result(rid, timeout=15):
                    return rec.wait(lambda m: m.topic == BASE + "/result" and
                                    m.json().get("id") == rid, start=mark, timeout=timeout,
                                    what="result %s" % rid).json()
                r = result("ret-reboot")
                assert not r["ok"] and "retained" in r["error"], r
                assert "retained" in result("ret-latch")["error"]
                # a reboot right after boot: refused (a command that keeps coming cannot loop)
                rec.publish(CMD + "reboot", b'{"id": "early"}')
                sent += 1
                r = result("early")
                assert not r["ok"] and "first 60 s after a boot" in r["error"], r
                rec.publish(CMD + "latch", b"")                # what clears a retained message
                rec.publish(CMD + "latch", b'{"id": "empty-ok"}')
                sent += 2
                assert result("empty-ok")["ok"]
                # lone surrogate escapes in what comes in: the result is still valid UTF-8
                rec.publish(CMD + "set_total",
                            b'{"id": "s\\ud800", "module": "\\udfff", "channel": 0}')
                sent += 1
                r = result("s\ufffd")
                assert not r["ok"] and "allow_totals" in r["error"], r
                for topic in (CMD + "reboot", CMD + "latch", CMD + "big", BASE + "/ghost/energy"):
                    rec.publish(topic, b"", retain=True)       # cleared: an empty message each
                sent += 3                                      # (the energy one is no command)

                # the flood: 2100 commands as fast as the broker takes them
                for name, payload, _ in _fuzz_cases(rng, 2100):
                    rec.publish(CMD + name, payload)
                    sent += 1
                for size in (65536, 65536, 1 << 20):
                    rec.publish(CMD + "latch", b"{" * size)
                    sent += 1
                    oversize += 1
                t_flood = time.monotonic()
                # settle: every command answered or counted (health comes every 10 s)
                deadline = time.monotonic() + 240
                while True:
                    time.sleep(2)
                    n = len([m for m in rec.since(mark) if m.topic == BASE + "/result"])
                    hs = [m for m in rec.since(mark) if m.topic == BASE + "/health"]
                    drops = hs[-1].json()["rx_drops"] if hs else 0
                    if n + drops - oversize - 1 == sent or time.monotonic() > deadline:
                        break
                # still working afterwards: a valid command gets its ok
                m2 = rec.mark()
                rec.publish(CMD + "stay_awake", b'{"id": "after", "on": false}')
                sent += 1
                r = rec.wait(lambda m: m.topic == BASE + "/result" and
                             m.json().get("id") == "after", start=m2, timeout=20).json()
                assert r["ok"], r
                h = rec.wait(lambda m: m.topic == BASE + "/health", start=m2, timeout=25).json()
                lo = run.ctl.truth()["truth"]
                assert run.proc.poll() is None, "the node exited (crash or reboot)"
                assert run.stop() == 0
                hi = run.ctl.truth()["truth"]
            out = run.output()
            results = [m.json() for m in rec.since(mark) if m.topic == BASE + "/result"]
            # every command: a result, or counted in rx_drops (the too-long ones: both; the
            # ghost energy message is counted too)
            assert len(results) + h["rx_drops"] - oversize - 1 == sent, (
                len(results), h["rx_drops"], oversize, sent)
            assert h["rx_drops"] >= oversize + 1, h     # how many more: the host's speed
            for m in rec.since(mark):
                if m.topic.startswith(BASE) and not m.topic.startswith(CMD) and m.payload:
                    m.payload.decode("utf-8")          # strict: valid UTF-8, whatever came in
            ok = [r for r in results if r["ok"]]
            assert {r["cmd"] for r in ok} <= {"latch", "discovery", "stay_awake"}, ok
            too_long = [r for r in results if "bytes, at most 512" in r.get("error", "")]
            assert len([r for r in too_long if re.search(r"payload of (65536|1048576|100000) ",
                                                         r["error"])]) == oversize
            assert "Traceback" not in out and "MemoryError" not in out, out[-3000:]
            assert out.count("link: connected") == 1, "the flood cost a reconnect"
            assert len(re.findall(r"dropped \(at most 1024 taken in\)", out)) == oversize + 1
            assert "crashed" not in out
            print("fuzz: %d commands, %d results (%d ok), %d counted drops, flood %.1f s" % (
                sent, len(results), len(ok), h["rx_drops"], time.monotonic() - t_flood))
            # totals: what the simulator measured, not a Wh more or less
            tot = totals_by_name(read_ledger(run.fs))
            for mod, k in (("ui3", 0), ("basic-pv", 1)):
                wh = tot[mod][0][k]
                assert lo[mod][0][k] * 0.999 - 0.2 <= wh <= hi[mod][0][k] * 1.001 + 0.01, (
                    mod, lo[mod][0], wh, hi[mod][0])
    finally:
        broker.stop()


class SilentServer:
    """Accepts TCP connections and never says a word (a TLS port behind a hung proxy)."""

    def __init__(self):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(16)
        self.port = self.s.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            self.accepted.append((time.monotonic(), c))

    def close(self):
        self.s.close()
        for _, c in self.accepted:
            c.close()


def test_a_tls_server_that_never_answers_blocks_nothing(tmp_path):
    """ssl's own handshake loops until the server answers (it blocked the event loop: the
    watchdog reset the board in a loop); the link's handshake runs in mqtt_as's bounded
    non-blocking reads and writes: periods keep closing, the watchdog is fed, attempts back
    off."""
    srv = SilentServer()
    cfg = net_config(SimpleNamespace(host="127.0.0.1", port=srv.port), watchdog_s=8,
                     link={"backoff_min_s": 2, "backoff_max_s": 8})
    cfg["mqtt"]["tls"] = True
    try:
        with NodeRun(tmp_path, scenario("energy.json"), cfg) as run:
            run.wait_for("connect attempt 3 in", timeout=150)    # two backoffs seen
            assert run.proc.poll() is None
            assert run.stop() == 0
        out = run.output()
    finally:
        srv.close()
    assert "WDT" not in out and "Traceback" not in out, out[-3000:]
    assert len(srv.accepted) >= 2, srv.accepted
    # periods kept closing through the attempts: one per period_s (10 s), none skipped
    t = [float(x) for x in re.findall(r"\[ *([\d.]+)\] I period: ui3 ok", out)]
    assert len(t) >= 2 and all(b - a < 15 for a, b in zip(t, t[1:])), t   # blocked: >= 20
    delays = [int(d) for d in re.findall(r"connect attempt \d+ in (\d+) ms", out)]
    assert len(delays) >= 2 and 1000 <= delays[0] <= 3000 and 2000 <= delays[1] <= 6000, delays
    assert "broker: (-1, 'Timeout on socket" in out or "no answer" in out, out[-2000:]


def test_no_secret_in_any_output(tmp_path):
    """The WiFi and MQTT passwords (non-ASCII, so mqtt_as must get the MQTT one as bytes)
    appear in nothing the node prints, writes to its files or publishes: not in health,
    discovery, results or an error. The broker checks the password."""
    wifi_pw, mqtt_pw = "Wlan-Geheim-42ä", "Mqtt-Geheim-ü☀7"
    pwfile = os.path.join(str(tmp_path), "passwd")
    with open(pwfile, "w") as f:
        f.write("node:%s\n" % mqtt_pw)
    subprocess.run(["mosquitto_passwd", "-U", pwfile], check=True)
    broker = Broker(extra="password_file %s\n" % pwfile)     # a wrong password is refused
    cfg = net_config(broker, wifi={"ssid": "bench-ap", "password": wifi_pw},
                     mqtt={"user": "node", "password": mqtt_pw, "health_s": 10})
    try:
        with Recorder(broker) as rec, NodeRun(tmp_path, scenario("energy.json"),
                                             cfg) as run:
            rec.wait(lambda m: m.topic == BASE + "/ui3/energy", timeout=40, what="energy")
            for name, payload in (("set_total", b'{"id": "t", "module": "ui3", "channel": 0, '
                                                b'"import_kwh": 1}'),
                                  ("set_ct", b'{"module": "x"}'), ("nosuch", b"{}"),
                                  ("latch", b'{"id": "x"}')):
                rec.publish(CMD + name, payload)
            rec.wait(lambda m: m.topic == BASE + "/result" and b'"x"' in m.payload, timeout=10)
            rec.wait(lambda m: m.topic == BASE + "/health", timeout=15)
            assert run.stop() == 0
        out = run.output()
    finally:
        broker.stop()
    assert "link: connected" in out
    files = b""
    for root, _, names in os.walk(run.fs):
        for n in names:
            if n != "config.json":
                with open(os.path.join(root, n), "rb") as f:
                    files += f.read()
    published = b"".join(m.payload for m in rec.msgs)
    assert any(m.topic.startswith("homeassistant/device/") for m in rec.msgs)
    for secret in (wifi_pw, mqtt_pw):
        for where, data in (("console", out.encode()), ("files", files),
                            ("published", published)):
            assert secret.encode() not in data, "%s in %s" % (secret, where)


def test_a_broker_restart_is_one_line_in_the_log(tmp_path):
    """mqtt_as asserts on the empty read of a closed socket: an AssertionError its reader
    did not catch, a traceback per broker restart, and the reconnect waited for the
    keepalive. Now it is a connection loss like any other: one line, reconnected at once."""
    broker = Broker()
    port = broker.port
    try:
        with NodeRun(tmp_path, scenario("energy.json"),
                     net_config(broker, link={"backoff_min_s": 1, "backoff_max_s": 2})) as run:
            run.wait_for("link: connected", timeout=30)
            for i in range(2):
                time.sleep(1)
                k = len(run.lines)
                broker.stop()                      # SIGTERM: the broker closes our socket
                k = run.wait_for("connection lost", timeout=20, start=k)
                broker = Broker(port=port)
                run.wait_for("link: connected", timeout=40, start=k)
            assert run.stop() == 0
        out = run.output()
    finally:
        broker.stop()
    lost = [ln for ln in out.splitlines() if "connection lost" in ln]
    assert len(lost) == 2 and all("lost (" in ln for ln in lost), lost      # with the reason
    assert "Traceback" not in out and "AssertionError" not in out, out[-3000:]
    assert out.count("link: connected") == 3
