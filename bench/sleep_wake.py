"""Sleep-mode benchmark (`make bench SUITE=sleep`): the battery logger's cost per wake.

The node (boot.py + main.py, mode "sleep", period_s 300, save_s 3600) with the three modules
of tools/host/sim/scenarios/energy.json (UI3, UI1, UI2; constant loads), publishing to a
private mosquitto, WAKES wakes after the cold boot; simulated time is fast-forwarded through each
sleep. Prints one `name: value unit` line per figure (bench/README.md).
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools.host import hostenv  # noqa: E402
from tools.host.broker import Broker  # noqa: E402
from tools.host.hostrun import HostNode  # noqa: E402

WAKES = int(os.getenv("SLEEP_BENCH_WAKES") or 20)
PERIOD_S, SAVE_S = 300, 3600
MODULES = [{"address": "0x50", "name": "ui3"}, {"address": "0x51", "name": "basic-pv"},
           {"address": "0x52", "name": "standard"}]


def flash_snapshot(fs):
    return {f: (os.stat(os.path.join(fs, f)).st_mtime_ns, os.path.getsize(os.path.join(fs, f)))
            for f in os.listdir(fs)}


def written(before, after):
    """Bytes of the files created or rewritten during a wake (a littlefs write is at least
    the file; the ledger and backlog are rewritten or appended whole lines)."""
    return sum(size for f, (mt, size) in after.items()
               if f not in before or before[f][0] != mt)


def main():
    d = tempfile.mkdtemp(prefix="rbnode-sleep-bench-")
    sc = os.path.join(ROOT, "tools", "host", "sim", "scenarios", "energy.json")
    bench = hostenv.SimProcess(sc)
    ctl = bench.client()
    broker = Broker()
    for name, chans in (("ui3", 3), ("basic-pv", 1), ("standard", 2)):
        for ch in range(chans):
            ctl.set_load(module=name, ch=ch, load=400 + 300 * ch)
    cfg = {"node": {"id": "bench", "name": "bench"}, "mode": "sleep", "period_s": PERIOD_S,
           "save_s": SAVE_S, "watchdog_s": 0, "drdy_pin": 4, "modules": MODULES,
           "wifi": {"ssid": "ap", "password": "pw"},
           "mqtt": {"host": broker.host, "port": broker.port}}
    node = HostNode(d, bench.address, cfg, bench_client=ctl)
    energy, awake, connect, txn, flash = [], [], [], [], 0
    try:
        for i in range(WAKES + 1):
            before = flash_snapshot(node.fs)
            ctl.counters(reset=True)
            p = node.start(stdout=subprocess.PIPE)
            out = p.communicate(timeout=120)[0].decode()
            if p.returncode not in (64,) or "Traceback" in out:
                raise SystemExit("wake %d failed:\n%s" % (i, out[-3000:]))
            node.finish()
            if i == 0:                 # the cold boot (primer, checks the broker's totals)
                continue
            c = ctl.counters()["counters"]
            txn.append(sum(v["transactions"] for v in c.values()))
            flash += written(before, flash_snapshot(node.fs))
            energy.append(int(re.search(r"energy step done in (\d+) ms", out).group(1)))
            awake.append(int(re.search(r"awake (\d+) ms", out).group(1)))
            t_conn = float(re.search(r"\[\s*([\d.]+)\] I link: connected", out).group(1))
            t_step = float(re.search(r"\[\s*([\d.]+)\] I sleep: wake #\d+ \(\w+\) energy step",
                                     out).group(1))
            connect.append((t_conn - t_step) * 1000)
    finally:
        node.kill()
        bench.stop()
        broker.stop()
    per_day = 86400 / PERIOD_S
    net = [a - e - c for a, e, c in zip(awake, energy, connect)]
    print("sleep_energy_step_ms: %.0f ms" % statistics.median(energy))
    print("sleep_energy_step_max_ms: %.0f ms" % max(energy))
    print("sleep_publish_ms: %.0f ms" % statistics.median(net))
    print("sleep_connect_ms: %.0f ms" % statistics.median(connect))
    print("sleep_awake_ms_per_wake: %.0f ms (our code: energy step and publishing)"
          % statistics.median([e + n for e, n in zip(energy, net)]))
    print("sleep_wake_total_ms: %.0f ms (with the WiFi association)" % statistics.median(awake))
    print("sleep_i2c_transactions_per_wake: %.1f transactions" % statistics.mean(txn))
    print("sleep_flash_bytes_per_day: %.0f bytes" % (flash / WAKES * per_day))
    print("sleep_wakes: %d wakes" % WAKES)


if __name__ == "__main__":
    main()
