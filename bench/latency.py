"""Latency and CPU benchmark (`make bench SUITE=latency`): how soon the node has the RT values
after a DRDY edge, how soon a power event is on the broker, and how much CPU it takes.

The node (lib/rbamp and lib/rbnode as .mpy, boot.py and bench/mp_latency.py as main.py) in
continuous mode with the modules of config.example.json on tools/host/sim/scenarios/default.json
(UI1, UI2, I3; DRDY wired-OR), MQTT to a private mosquitto through mqtt_as. For RUN_S seconds
a channel steps by 1.5 kW every STEP_S seconds, the three channels with voltage in turn (a
power event each, after settle_windows 3; each channel holds a level for 0.9 s).
Edges are stamped in the node's DRDY interrupt; the events are stamped by a subscriber on
the same host clock when the broker delivers them. CPU: the node process's user and system
time (/proc) over the run, after a warm-up.
"""
import json
import os
import signal
import statistics
import sys
import time

from benchlib import ROOT, compile_libs, hostenv, pct, remove
from tools.host.broker import Broker
from tools.host.mqttrec import Recorder
from tools.host.noderun import NodeRun

RUN_S = float(os.getenv("LATENCY_BENCH_S") or 320)
STEP_S = 0.3
WARMUP_S = 5
WINDOW_MS = 200
STEPS = [("mains", 0), ("solar-house", 0), ("solar-house", 1)]   # sub-panel: no voltage


def config(broker):
    with open(os.path.join(ROOT, "config.example.json")) as f:
        cfg = json.load(f)
    cfg.update(log_level="info", watchdog_s=0, node={"id": "lat", "name": "latency"},
               wifi={"ssid": "ap", "password": "pw"})
    cfg["mqtt"].update(host=broker.host, port=broker.port)
    return cfg


def cpu_s(pid):
    """(user, system) CPU seconds of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def scenario():
    with open(os.path.join(ROOT, "tools", "host", "sim", "scenarios", "default.json")) as f:
        return json.load(f)


def run():
    mpy = compile_libs()
    broker = Broker()
    rec = Recorder(broker, "rbnode/lat/events")
    rec.connect()
    files = {"boot.py": open(os.path.join(ROOT, "boot.py")).read(),
             "main.py": open(os.path.join(ROOT, "bench", "mp_latency.py")).read()}
    env = {"MICROPYPATH": hostenv.micropypath([mpy])}
    d = os.path.join(mpy, "run")
    os.makedirs(d)
    try:
        with NodeRun(d, scenario(), config(broker), env=env, files=files) as node:
            node.wait_for("link: connected", timeout=30)
            time.sleep(WARMUP_S)
            c0, w0 = cpu_s(node.proc.pid), time.monotonic()
            lo = {}
            t_next = time.monotonic()
            k = 0
            while time.monotonic() - w0 < RUN_S:
                name, ch = STEPS[k % len(STEPS)]
                base = lo.setdefault((name, ch), 200)
                up = (k // len(STEPS)) % 2 == 0
                node.ctl.set_load(module=name, ch=ch, load=base + 1500 if up else base)
                k += 1
                t_next += STEP_S
                time.sleep(max(0.0, t_next - time.monotonic()))
            time.sleep(2)                      # the last event reaches the broker
            c1, w1 = cpu_s(node.proc.pid), time.monotonic()
            node.stop(signal.SIGINT)
            out = node.output()
    finally:
        rec.close()
        broker.stop()
        remove(mpy)
    return out, rec.msgs, k, [(c1[i] - c0[i]) / (w1 - w0) * 100 for i in (0, 1)]


def main():
    out, msgs, steps, cpu = run()
    lat = [int(x) / 1000 for x in
           next(ln for ln in out.splitlines() if ln.startswith("LAT "))[4:].split(",") if x]
    raised = {}
    for ln in out.splitlines():
        if ln.startswith("EV "):
            _, name, ch, e = ln.split()
            raised.setdefault((name, int(ch)), []).append(int(e) / 1e6)
    got = {}
    for m in msgs:
        ev = m.json()
        if ev.get("kind") == "power":
            got.setdefault((ev["module"], ev["ch"]), []).append(m.t)
    ev_lat = []
    for key, edges in raised.items():
        rx = got.get(key, [])
        if len(rx) != len(edges):
            raise SystemExit("%s ch%d: %d power events raised, %d on the broker"
                             % (key[0], key[1], len(edges), len(rx)))
        ev_lat += [(r - e) * 1000 for e, r in zip(edges, rx) if e]
    if len(lat) < 1000 or len(ev_lat) < steps * 0.9:
        raise SystemExit("too few samples: %d edges, %d events of %d steps\n%s"
                         % (len(lat), len(ev_lat), steps, out[-3000:]))
    for name, vals in (("drdy_to_values", lat), ("drdy_to_event_on_broker", ev_lat)):
        med, p99 = statistics.median(vals), pct(vals, 99)
        print("%s_median_ms: %.2f ms" % (name, med))
        print("%s_p99_ms: %.2f ms" % (name, p99))
        print("%s_p99_window_ratio: %.4f of the 200 ms RT window" % (name, p99 / WINDOW_MS))
        print("%s_max_ms: %.2f ms" % (name, max(vals)))
        print("%s_count: %d samples" % (name, len(vals)))
    print("node_cpu_user_pct: %.1f %% of wall time (3 modules at 5 Hz, MQTT)" % cpu[0])
    print("node_cpu_total_pct: %.1f %% of wall time (user + system: the simulated bus's "
          "sockets too)" % (cpu[0] + cpu[1]))


if __name__ == "__main__":
    sys.exit(main())
