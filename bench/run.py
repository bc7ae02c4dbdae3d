"""Benchmarks: `make bench`. Prints one `name: value unit` line per figure and writes them
to build/bench/<suite>.json. Figures and their scenarios: bench/README.md."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools import hostenv  # noqa: E402


def run_mp(script, bench, args=(), path_extra=()):
    env = hostenv.node_env(bench.address if bench else None, tempfile.mkdtemp(), None, path_extra)
    p = hostenv.run_mp(script, args, env, timeout=600)
    if p.returncode:
        raise SystemExit("benchmark %s failed:\n%s" % (script, p.stdout))
    return p.stdout


def mpy_lib():
    """lib/rbamp compiled with mpy-cross, as it would be frozen."""
    out = tempfile.mkdtemp(prefix="rbamp-mpy-")
    os.makedirs(os.path.join(out, "rbamp"))
    mpyc = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    for f in os.listdir(os.path.join(ROOT, "lib", "rbamp")):
        if f.endswith(".py"):
            subprocess.run([mpyc, "-O1", "-o", os.path.join(out, "rbamp", f[:-3] + ".mpy"),
                            os.path.join(ROOT, "lib", "rbamp", f)], check=True)
    return out


def driver():
    bench = hostenv.BenchProcess(os.path.join(ROOT, "bench", "driver_scenario.json"))
    try:
        text = run_mp("bench/mp_driver.py", bench)
    finally:
        bench.stop()
    mpy = mpy_lib()
    try:
        # the compiled package must be found before lib/: put it first on the path
        text += run_mp("bench/mp_driver.py", None, ["_mpy"], path_extra=[mpy])
        size = sum(os.path.getsize(os.path.join(mpy, "rbamp", f)) for f in os.listdir(os.path.join(mpy, "rbamp")))
        text += "rbamp_mpy_bytes: %d bytes\n" % size
    finally:
        shutil.rmtree(mpy, ignore_errors=True)
    return text


def _script(name):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", name)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode:
        raise SystemExit("benchmark %s failed:\n%s" % (name, p.stdout[-3000:]))
    return p.stdout


def node():
    """bench/node_heap.py (about 20 minutes: a 5-minute run, 150 s probes, a 5-minute check)."""
    return _script("node_heap.py")


def sleep():
    """bench/sleep_wake.py (about a minute: 20 wakes with MQTT)."""
    return _script("sleep_wake.py")


def report(suite, text):
    figures = {}
    for line in text.splitlines():
        m = re.match(r"(\w+): ([-\d.e+]+) (.+)$", line)
        if m:
            figures[m.group(1)] = {"value": float(m.group(2)), "unit": m.group(3)}
            print(line, flush=True)
    os.makedirs(os.path.join(ROOT, "build", "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "build", "bench", suite + ".json"), "w") as f:
        json.dump(figures, f, indent=1, sort_keys=True)


def sleep():
    """bench/sleep_wake.py (about a minute: 20 wakes with MQTT)."""
    p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "sleep_wake.py")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode:
        raise SystemExit("sleep benchmark failed:\n%s" % p.stdout[-3000:])
    return p.stdout


SUITES = {"driver": driver, "node": node, "sleep": sleep}


def main(argv):
    for name in argv or list(SUITES):
        report(name, SUITES[name]())


if __name__ == "__main__":
    main(sys.argv[1:])
