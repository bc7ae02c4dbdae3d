"""Node heap benchmark: heap after boot, live set and peak over a 5-minute run, and the
smallest `-X heapsize` at which the node runs the same scenario for 5 minutes.

    python bench/node_heap.py                    # suite node: the PyPI unix port, .mpy in RAM
    python bench/node_heap.py --frozen --prefix node32 [--tls]
                                                 # suite node32: $MICROPYTHON, its frozen app
    python bench/node_heap.py --slot --prefix node32_slot
                                                 # the app as an over-the-air update runs it:
                                                 # its bundle's .mpy files (tools/ota.py) ahead
                                                 # of the binary's frozen modules (rbboot.py)

Scenario: tools/host/sim/scenarios/default.json (three modules, DRDY wired-OR) with the modules
of config.example.json, period_s 10, save_s 30, log_level debug (heap figures are logged),
publishing to a private mosquitto through mqtt_as (discovery, states, periods, health); with
--tls over TLS to the same mosquitto (a throw-away CA, the node verifying the certificate).
The PyPI unix port is 64-bit: objects take about twice the room they take on ESP32 / RP2040;
`make firmware BOARD=unix32` builds the chips' memory model (bench/node32.py).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, compile_libs, hostenv, remove
from tools.host.broker import Broker, make_test_ca
from tools.host.hostrun import HostNode

RUN_S = float(os.getenv("NODE_BENCH_S") or 300)
PROBE_S = float(os.getenv("NODE_PROBE_S") or 150)   # long enough to fill the hub's feeds


class Setup:
    """What one suite runs the node with: the binary's modules (MICROPYPATH), TLS, the name
    prefix of its figures."""

    def __init__(self, frozen, tls, prefix, slot=False):
        self.prefix = prefix
        self.tls = tls
        if slot:
            self.mpy = tempfile.mkdtemp(prefix="rbnode-slot-")
            self.path = hostenv.micropypath([self.mpy], frozen_first=True)
            _fill_slot(self.mpy)
        else:
            self.mpy = None if frozen else compile_libs()
            # frozen: the binary's own app (and host board, BOARD=unix32) ahead of the sources
            self.path = hostenv.micropypath(frozen_first=True) if frozen else \
                hostenv.micropypath([self.mpy])
        self.ca_dir = tempfile.mkdtemp(prefix="node-bench-ca-") if tls else None
        self.broker = Broker(tls=make_test_ca(self.ca_dir) if tls else None)

    def config(self):
        with open(os.path.join(ROOT, "config.example.json")) as f:
            cfg = json.load(f)
        cfg.update(log_level="debug", period_s=10, save_s=30, watchdog_s=0,
                   node={"id": "heap", "name": "heap"}, wifi={"ssid": "ap", "password": "pw"})
        cfg["mqtt"].update(host=self.broker.host, port=self.broker.port)
        if self.tls:
            cfg["mqtt"].update(port=self.broker.tls_port, tls=True, ca_file="ca.pem")
        return cfg

    def close(self):
        self.broker.stop()
        for d in (self.mpy, self.ca_dir):
            if d:
                remove(d)


def _fill_slot(d):
    """What an update's bundle puts in a slot (tools/ota.py: every app module as .mpy)."""
    from tools import ota
    with tempfile.TemporaryDirectory() as work:
        for path, data in ota.compile_app("9.9.9", ota.mpy_cross(), work):
            os.makedirs(os.path.dirname(os.path.join(d, path)), exist_ok=True)
            with open(os.path.join(d, path), "wb") as f:
                f.write(data)


def run_node(setup, seconds, heap=None):
    """Run the node; returns (survived, output)."""
    bench = hostenv.SimProcess(None)
    d = tempfile.mkdtemp(prefix="node-bench-")
    try:
        node = HostNode(d, bench.address, setup.config(), bench_client=bench.client(),
                        env={"MICROPYPATH": setup.path},
                        mp_args=["-X", "heapsize=%d" % heap] if heap else [])
        if setup.tls:
            shutil.copy(os.path.join(setup.ca_dir, "ca.pem"), node.fs)
        out = open(os.path.join(d, "out.log"), "w+")
        p = node.start(stdout=out)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.5)
        alive = p.poll() is None
        if alive:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                node.kill()
        out.seek(0)
        text = out.read()
    finally:
        bench.stop()
        remove(d)
    periods = len(re.findall(r"period: mains ok", text))
    connects = text.count("link: connected")     # once: no reconnect for want of memory
    ok = alive and "MemoryError" not in text and "crashed" not in text and \
        periods >= int(seconds // 10) - 2 and connects == 1
    print("  run %d s, heap %s: %s (%d periods, %d connects%s%s)" % (
        seconds, heap or "default", "ok" if ok else "FAILED", periods, connects,
        ", MemoryError" if "MemoryError" in text else "", "" if alive else ", process ended"),
        file=sys.stderr, flush=True)
    return ok, text


def smallest_heap(setup, live, step):
    """Bisect between the live set and twice it on PROBE_S runs, then confirm with a full
    run (stepping up if it fails)."""
    lo, hi = live // step * step, (2 * live + step) // step * step
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        ok, _ = run_node(setup, PROBE_S, mid)
        lo, hi = (lo, mid) if ok else (mid, hi)
    size = hi
    for _ in range(3):
        ok, _ = run_node(setup, RUN_S, size)
        if ok:
            return size
        size += step
    return None


def measure(setup, step):
    p = setup.prefix
    ok, text = run_node(setup, RUN_S)
    boot = re.search(r"heap after boot: (\d+) bytes used", text)
    peaks = [(int(a), int(b)) for a, b in re.findall(r"heap peak (\d+) bytes, live (\d+)", text)]
    if not ok or not boot or not peaks:
        raise SystemExit("node benchmark run failed:\n" + text[-3000:])
    live = max(b for a, b in peaks)
    print("%s_heap_after_boot_bytes: %s bytes" % (p, boot.group(1)), flush=True)
    print("%s_heap_live_peak_bytes: %d bytes" % (p, live), flush=True)
    print("%s_heap_peak_bytes: %d bytes" % (p, max(a for a, b in peaks)), flush=True)
    print("%s_run_seconds: %d s" % (p, RUN_S), flush=True)
    size = smallest_heap(setup, live, step)
    if size is None:
        raise SystemExit("no heap size up to twice the live set ran the node for %d s" % RUN_S)
    print("%s_min_heapsize_bytes: %d bytes" % (p, size))
    print("%s_min_heapsize_kb: %d KB (3 modules, %d s)" % (p, size // 1024, RUN_S), flush=True)


def main(argv):
    a = argparse.ArgumentParser()
    a.add_argument("--frozen", action="store_true", help="run the binary's frozen app")
    a.add_argument("--tls", action="store_true", help="MQTT over TLS")
    a.add_argument("--slot", action="store_true", help="the app from an update's .mpy files")
    a.add_argument("--prefix", default="node", help="figure names' prefix")
    a.add_argument("--step", type=int, default=8, help="bisection step, KB")
    args = a.parse_args(argv)
    setup = Setup(args.frozen, args.tls, args.prefix + ("_tls" if args.tls else ""), args.slot)
    try:
        measure(setup, args.step * 1024)
    finally:
        setup.close()


if __name__ == "__main__":
    main(sys.argv[1:])
