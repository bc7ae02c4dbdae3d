"""Node heap benchmark (issue 4): heap after boot, peak heap over a 5-minute run, and the
smallest `-X heapsize` at which the node runs the same scenario for 5 minutes.

Scenario: tools/host/sim/scenarios/default.json (three modules, DRDY wired-OR) with the modules
of config.example.json, period_s 10, save_s 30, log_level debug (heap figures are logged),
publishing to a private mosquitto through mqtt_as (discovery, states, periods, health).
The unix port is 64-bit: objects take about twice the room they take on ESP32 / RP2040.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, compile_libs, hostenv, remove
from tools.host.broker import Broker
from tools.host.hostrun import HostNode

RUN_S = float(os.getenv("NODE_BENCH_S") or 300)
PROBE_S = float(os.getenv("NODE_PROBE_S") or 150)   # long enough to fill the hub's feeds


def config():
    with open(os.path.join(ROOT, "config.example.json")) as f:
        cfg = json.load(f)
    cfg.update(log_level="debug", period_s=10, save_s=30, watchdog_s=0,
               node={"id": "heap", "name": "heap"}, wifi={"ssid": "ap", "password": "pw"})
    cfg["mqtt"].update(host=BROKER.host, port=BROKER.port)
    return cfg


MPY = None
BROKER = None


def run_node(seconds, heap=None):
    """Run the node; returns (survived, output)."""
    bench = hostenv.SimProcess(None)
    d = tempfile.mkdtemp(prefix="node-bench-")
    try:
        env = {"MICROPYPATH": hostenv.micropypath([MPY])} if MPY else None
        node = HostNode(d, bench.address, config(), bench_client=bench.client(), env=env,
                        mp_args=["-X", "heapsize=%d" % heap] if heap else [])
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
    periods = len(re.findall(r"period: mains ok", text))
    connects = text.count("link: connected")     # once: no reconnect for want of memory
    ok = alive and "MemoryError" not in text and "crashed" not in text and \
        periods >= int(seconds // 10) - 2 and connects == 1
    print("  run %d s, heap %s: %s (%d periods, %d connects%s%s)" % (
        seconds, heap or "default", "ok" if ok else "FAILED", periods, connects,
        ", MemoryError" if "MemoryError" in text else "", "" if alive else ", process ended"),
        file=sys.stderr, flush=True)
    return ok, text


def smallest_heap(live, step=8 * 1024):
    """Bisect between the live set and twice it on PROBE_S runs, then confirm with a full
    run (stepping up if it fails)."""
    lo, hi = live // step * step, (2 * live + step) // step * step
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        ok, _ = run_node(PROBE_S, mid)
        lo, hi = (lo, mid) if ok else (mid, hi)
    size = hi
    for _ in range(3):
        ok, _ = run_node(RUN_S, size)
        if ok:
            return size
        size += step
    return None


def main():
    global MPY, BROKER
    MPY = compile_libs()
    BROKER = Broker()
    try:
        measure()
    finally:
        BROKER.stop()
        remove(MPY)


def measure():
    ok, text = run_node(RUN_S)
    boot = re.search(r"heap after boot: (\d+) bytes used", text)
    peaks = [(int(a), int(b)) for a, b in re.findall(r"heap peak (\d+) bytes, live (\d+)", text)]
    if not ok or not boot or not peaks:
        raise SystemExit("node benchmark run failed:\n" + text[-3000:])
    live = max(b for a, b in peaks)
    print("node_heap_after_boot_bytes: %s bytes" % boot.group(1), flush=True)
    print("node_heap_live_peak_bytes: %d bytes" % live, flush=True)
    print("node_heap_peak_bytes: %d bytes" % max(a for a, b in peaks), flush=True)
    print("node_run_seconds: %d s" % RUN_S, flush=True)
    size = smallest_heap(live)
    if size is None:
        raise SystemExit("no heap size up to twice the live set ran the node for %d s" % RUN_S)
    print("node_min_heapsize_bytes: %d bytes" % size)
    print("node_min_heapsize_kb: %d KB (3 modules, %d s)" % (size // 1024, RUN_S))


if __name__ == "__main__":
    main()
