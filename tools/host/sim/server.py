"""The simulator process: hosts a VirtualBus in real time for a node on the unix port.

    python -m tools.host.sim.server --scenario tools/host/sim/scenarios/default.json --port 0

Prints `SIM READY host:port` once listening. Each TCP connection starts with one line
naming its channel:
  I2C\\n      binary transactions (see tools/host/board/_sim.py for the frame layout)
  PIN <n>\\n  the simulator pushes one byte b"F" per falling edge of DRDY line n
  CTL\\n      JSON lines: {"op": ...} -> {"ok": true, ...} | {"ok": false, "error": ...}
CPython only. Loopback only: the simulator refuses to bind anything else.
"""
import argparse
import json
import socket
import struct
import sys
import threading
import time

from . import build
from .bus import HANG
from .clock import RealClock
from .control import Control

_REQ = struct.Struct("<BBBH")
_RSP = struct.Struct("<BH")
OP_XFER = 1
OP_FREQ = 2


class BenchServer:
    def __init__(self, scenario, host="127.0.0.1", port=0, hang_ms=30000):
        if not host.startswith("127.") and host not in ("localhost", "::1"):
            raise ValueError("bench host must be a loopback address, got %r" % host)
        self.clock = RealClock()
        self.lock = threading.RLock()
        self.bus = build(scenario, self.clock)
        self.hang_ms = scenario.get("faults", {}).get("hang_ms", hang_ms)
        self.subs = {}  # pin -> [socket]
        self.edge_counts = {}
        self.wifi = {"up": True, "rssi": -58, "since_us": -10 ** 9}
        self.epoch0 = time.time()
        self.control = Control(self)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.address = self.sock.getsockname()[:2]
        self.running = True

    # ---- threads ------------------------------------------------------------------------
    def serve_forever(self):
        threading.Thread(target=self._ticker, daemon=True).start()
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                break
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def stop(self):
        self.running = False
        self.sock.close()

    def _ticker(self):
        """Advance the world at every RT commit and push DRDY edges to subscribers."""
        while self.running:
            with self.lock:
                nxt = self.bus.next_event()
                now = self.clock.now_us()
            wait = 0.02 if nxt is None else min(0.02, max(0.0, (nxt - now) / 1e6))
            time.sleep(wait)
            self.push_edges()

    def push_edges(self):
        with self.lock:
            now = self.clock.now_us()
            self.bus.advance(now)
            edges = self.bus.take_edges()
            for pin, t in edges:
                if now - t > 50000:
                    continue  # skipped by a fast-forward: nobody was awake to see it
                self.edge_counts[pin] = self.edge_counts.get(pin, 0) + 1
                for s in list(self.subs.get(pin, ())):
                    try:
                        s.sendall(b"F")
                    except OSError:
                        self.subs[pin].remove(s)

    def _serve(self, conn):
        f = conn.makefile("rb")
        try:
            hello = f.readline().decode().split()
            if hello[:1] == ["I2C"]:
                self._serve_i2c(conn, f)
            elif hello[:1] == ["PIN"] and len(hello) == 2:
                with self.lock:
                    self.subs.setdefault(int(hello[1]), []).append(conn)
                conn.recv(1)  # block until the node goes away
            elif hello[:1] == ["CTL"]:
                self._serve_ctl(conn, f)
        except (OSError, ValueError, IndexError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _serve_i2c(self, conn, f):
        while True:
            hdr = f.read(_REQ.size)
            if len(hdr) < _REQ.size:
                return
            op, addr, wlen, rlen = _REQ.unpack(hdr)
            wdata = f.read(wlen) if wlen else b""
            if op == OP_FREQ:
                with self.lock:
                    self.bus.freq = struct.unpack("<I", wdata)[0]
                conn.sendall(_RSP.pack(0, 0))
                continue
            with self.lock:
                status, data = self.bus.transfer(addr, wdata, rlen)
            if self.bus.edges:
                self.push_edges()  # this transaction ran a commit: deliver its edge now
            if status == HANG:
                time.sleep(self.hang_ms / 1000)  # wedged bus: only a watchdog gets you out
            data = data or b""
            conn.sendall(_RSP.pack(status, len(data)) + data)

    def _serve_ctl(self, conn, f):
        for line in f:
            try:
                req = json.loads(line)
                with self.lock:
                    rsp = self.control.handle(req)
            except Exception as e:  # a bad control request must not kill the simulator
                rsp = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
            conn.sendall((json.dumps(rsp) + "\n").encode())


def main(argv=None):
    ap = argparse.ArgumentParser(description="rbAmp simulator")
    ap.add_argument("--scenario", default=None, help="scenario JSON (default: built-in default)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args(argv)
    from .scenario import load_scenario
    srv = BenchServer(load_scenario(a.scenario), a.host, a.port)
    print("SIM READY %s:%d" % srv.address, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
