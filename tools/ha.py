"""A real Home Assistant for the tests (CPython): its own network namespace, a private config.

    with HomeAssistant(tmp_dir, broker) as ha:      # broker: tools.host.broker.Broker
        ha.wait_entities(lambda states: ...)
        ha.ws({"type": "energy/validate"})          # the websocket API, as the frontend uses it
        ha.log_problems()                           # MQTT / sensor warnings and errors

HA runs from the cached venv of tools/ha_env.py inside a network namespace of its own that
reaches nothing but the test's broker (a veth pair: the host side 10.213.<n>.1, HA's side .2),
so whatever it tries to open outside goes nowhere. Its MQTT config entry is written into
.storage before the first start (YAML cannot make one); the onboarding API gives the owner
user and a token. The broker must listen on `host_addr` too (`listen_extra(port)`).
"""
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from tools import ha_env
from tools.host.hostenv import stop_process

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 8123


class Netns:
    """A network namespace with a veth pair to the host: /30 on 10.213.<n>.0."""

    def __init__(self):
        self.n = os.getpid() % 200 + 20
        self.name = "rbha%d" % self.n
        self.host_addr = "10.213.%d.1" % self.n
        self.ns_addr = "10.213.%d.2" % self.n
        self.up()

    def _ip(self, *args, check=True):
        return subprocess.run(["ip"] + list(args), check=check, capture_output=True, text=True)

    def up(self):
        self.down()
        h, p = "vh%d" % self.n, "vp%d" % self.n
        self._ip("netns", "add", self.name)
        self._ip("link", "add", h, "type", "veth", "peer", "name", p)
        self._ip("link", "set", p, "netns", self.name)
        self._ip("addr", "add", self.host_addr + "/30", "dev", h)
        self._ip("link", "set", h, "up")
        for args in (("addr", "add", self.ns_addr + "/30", "dev", p), ("link", "set", p, "up"),
                     ("link", "set", "lo", "up")):
            self._ip("-n", self.name, *args)

    def down(self):
        self._ip("link", "del", "vh%d" % self.n, check=False)
        self._ip("netns", "del", self.name, check=False)

    def prefix(self):
        return ["ip", "netns", "exec", self.name]


def listen_extra(addr, port):
    """mosquitto.conf lines for a second listener HA's namespace reaches."""
    return "listener %d %s\n" % (port, addr)


class HomeAssistant:
    def __init__(self, config_dir, broker_addr, broker_port, netns, discovery_prefix=
                 "homeassistant"):
        self.dir = str(config_dir)
        self.broker = (broker_addr, broker_port)
        self.netns = netns
        self.prefix = discovery_prefix
        self.url = "http://%s:%d" % (netns.ns_addr, PORT)
        self.proc = None
        self.token = None
        self._log = None

    # ---- lifecycle ----------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def write_config(self):
        os.makedirs(os.path.join(self.dir, ".storage"), exist_ok=True)
        with open(os.path.join(self.dir, "configuration.yaml"), "w") as f:
            f.write("homeassistant:\n  name: rbnode test\n  unit_system: metric\n"
                    "  time_zone: UTC\n  country: DE\n  latitude: 50\n  longitude: 8\n"
                    "  elevation: 100\n  currency: EUR\n"
                    "http:\n  server_host: %s\n  server_port: %d\n"
                    "energy:\nrecorder:\n  commit_interval: 1\nhistory:\n"
                    "logger:\n  default: warning\n" % (self.netns.ns_addr, PORT))
        now = "2026-01-01T00:00:00+00:00"
        entry = {"created_at": now, "modified_at": now, "data": {
            "broker": self.broker[0], "port": self.broker[1], "discovery": True,
            "discovery_prefix": self.prefix}, "discovery_keys": {}, "disabled_by": None,
            "domain": "mqtt", "entry_id": uuid.uuid4().hex, "minor_version": 2, "options": {},
            "pref_disable_new_entities": False, "pref_disable_polling": False,
            "source": "user", "subentries": [], "title": self.broker[0], "unique_id": None,
            "version": 1}
        path = os.path.join(self.dir, ".storage", "core.config_entries")
        if not os.path.exists(path):
            with open(path, "w") as f:
                json.dump({"version": 1, "minor_version": 5, "key": "core.config_entries",
                           "data": {"entries": [entry]}}, f)

    def start(self, timeout=180):
        self.write_config()
        self._log = open(os.path.join(self.dir, "ha.out"), "ab")
        self.proc = subprocess.Popen(
            self.netns.prefix() + [ha_env.venv_python(), "-m", "homeassistant", "-c", self.dir,
                                   "--skip-pip", "--log-file",
                                   os.path.join(self.dir, "home-assistant.log")],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("Home Assistant exited (%d): %s" % (
                    self.proc.returncode, self.tail()))
            try:
                with urllib.request.urlopen(self.url + "/api/onboarding", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("Home Assistant did not answer in %d s: %s" % (timeout,
                                                                           self.tail()))
        if self.token is None:
            self.token = self._onboard()
        self._wait_running(deadline)

    def _wait_running(self, deadline):
        while time.monotonic() < deadline:
            try:
                if self.rest("/api/config").get("state") == "RUNNING":
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("Home Assistant never reached RUNNING: " + self.tail())

    def stop(self):
        if self.proc:
            stop_process(self.proc, grace=60)
            self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def restart(self):
        self.stop()
        self.start()

    def tail(self, n=3000):
        for name in ("home-assistant.log", "ha.out"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    return f.read()[-n:]
        return ""

    # ---- APIs -------------------------------------------------------------------------------
    def _post(self, path, doc, form=False, auth=True):
        data = (urllib.parse.urlencode(doc) if form else json.dumps(doc)).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded" if form
                       else "application/json")
        if auth and self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def _onboard(self):
        client = self.url + "/"
        r = self._post("/api/onboarding/users", {"client_id": client, "name": "rbnode",
                                                 "username": "rbnode", "password": "rbnode-t3st",
                                                 "language": "en"}, auth=False)
        tok = self._post("/auth/token", {"grant_type": "authorization_code",
                                         "code": r["auth_code"], "client_id": client},
                         form=True, auth=False)
        token = tok["access_token"]
        # not "core_config": that step adds integrations (weather, text to speech) whose
        # requirements the venv does not have; the API works without it
        for step, doc in (("analytics", {}),
                          ("integration", {"client_id": client, "redirect_uri": client})):
            req = urllib.request.Request(self.url + "/api/onboarding/" + step,
                                         data=json.dumps(doc).encode(), method="POST")
            req.add_header("Authorization", "Bearer " + token)
            req.add_header("Content-Type", "application/json")
            try:
                urllib.request.urlopen(req, timeout=30).read()
            except urllib.error.HTTPError:
                pass                               # a step already done
        return token

    def rest(self, path):
        req = urllib.request.Request(self.url + path)
        req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def states(self):
        return {s["entity_id"]: s for s in self.rest("/api/states")}

    def ws(self, *commands):
        """Results of websocket commands ({"type": ...}), through HA's own aiohttp."""
        out = subprocess.run([ha_env.venv_python(), os.path.join(HERE, "ha_ws.py"),
                              self.url, self.token, json.dumps(list(commands))],
                             capture_output=True, text=True, timeout=60)
        if out.returncode:
            raise RuntimeError("websocket: " + out.stderr[-2000:])
        return json.loads(out.stdout)

    def wait(self, pred, timeout=60, what="a state"):
        deadline = time.monotonic() + timeout
        while True:
            st = self.states()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError("Home Assistant never showed %s; log:\n%s" % (
                    what, self.tail()))
            time.sleep(1)

    def log_problems(self, words=("mqtt", "sensor", "rbnode", "discovery", "energy")):
        """WARNING and ERROR lines of HA's log that concern MQTT, sensors or energy."""
        p = os.path.join(self.dir, "home-assistant.log")
        if not os.path.exists(p):
            return []
        out = []
        with open(p, errors="replace") as f:
            for line in f:
                if (" WARNING " in line or " ERROR " in line or " CRITICAL " in line) and \
                        any(w in line.lower() for w in words):
                    out.append(line.rstrip())
        return out
