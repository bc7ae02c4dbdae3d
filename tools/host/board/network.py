# Host board `network` for the unix port: a WLAN whose link the simulator controls.
# The host's own network carries the traffic; the simulator's {"op": "wifi", "up": false}
# takes the link down (isconnected() False, status() not GOT_IP) until it comes back.
# Link-level packet faults (loss, latency) are for network namespaces + tc netem.
import time

import _sim
from _board import unique_id

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_BEACON_TIMEOUT = 200
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
ASSOC_MS = 800  # simulated association + DHCP time after connect()

_hostname = "rbnode"


def hostname(name=None):
    global _hostname
    if name is None:
        return _hostname
    _hostname = name


def country(code=None):
    return "XX" if code is None else None


class WLAN:
    _link = None
    _link_at = 0

    def __init__(self, interface_id=STA_IF):
        self._if = interface_id
        self._active = False
        self._want = False
        self._since = None
        self._ssid = None
        self.connects = 0

    @classmethod
    def _world(cls):
        """Link state from the simulator, cached for 100 ms (mqtt_as polls isconnected often)."""
        now = time.ticks_ms()
        if cls._link is None or time.ticks_diff(now, cls._link_at) > 100:
            if _sim.address():
                cls._link = _sim.ctl("wifi")
            else:
                cls._link = {"up": True, "rssi": -50, "up_for_ms": 1 << 30}
            cls._link_at = now
        return cls._link

    def active(self, is_active=None):
        if is_active is None:
            return self._active
        self._active = bool(is_active)
        if not self._active:
            self._want = False

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self._active:
            raise OSError("WiFi Not Started")
        self._want = True
        self._ssid = ssid
        self._since = time.ticks_ms()
        self.connects += 1

    def disconnect(self):
        self._want = False

    def _associated(self):
        """Connected once connect() was called ASSOC_MS ago and the AP has been up as long."""
        w = self._world()
        if not (self._active and self._want and w["up"]) or w.get("up_for_ms", ASSOC_MS) < ASSOC_MS:
            return False
        return time.ticks_diff(time.ticks_ms(), self._since) >= ASSOC_MS

    def isconnected(self):
        return self._associated()

    def status(self, param=None):
        if param == "rssi":
            return self._world()["rssi"]
        if self._associated():
            return STAT_GOT_IP
        if self._active and self._want:
            return STAT_CONNECTING if self._world()["up"] else STAT_NO_AP_FOUND
        return STAT_IDLE

    def config(self, *args, **kw):
        if args:
            k = args[0]
            if k == "mac":
                return unique_id()
            if k in ("essid", "ssid"):
                return self._ssid
            if k == "hostname":
                return _hostname
            if k == "txpower":
                return 20
            raise ValueError("unknown config param")
        return None

    def ifconfig(self, cfg=None):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def ipconfig(self, *args, **kw):
        return ("127.0.0.1", "255.0.0.0") if args and args[0] == "addr4" else None

    def scan(self):
        if not self._world()["up"]:
            return []
        return [(b"bench-ap", b"\x02\x00\x00\x00\x00\x01", 6, self._world()["rssi"], 3, False)]
