"""Benchmarks: `make bench [SUITE=name]`. Prints one `name: value unit` line per figure and
writes them to build/bench/<suite>.json (or $BENCH_OUT/<suite>.json). Figures and their scenarios: bench/README.md.

Suites: driver (a minute), latency (3 minutes), energy (5 minutes), sleep (2 minutes),
node (about 20 minutes: the smallest heap is found by bisection), node32 (the same on the chips'
memory model, with and without TLS and from an update's slot: about an hour; MPY_DIR=<MicroPython tree> or
MICROPYTHON=<unix32 binary>, else skipped), ota (the update's cost: seconds; MICROPYTHON= for
the chips' memory model)."""
import json
import os
import re
import subprocess
import sys

from benchlib import ROOT, compile_libs, hostenv, remove, run_mp
from tools import manifest


def driver():
    bench = hostenv.SimProcess("bench_driver")
    try:
        text = run_mp("bench/mp_driver.py", bench)
    finally:
        bench.stop()
    mpy = compile_libs(("rbamp",))
    try:
        # the compiled package must be found before lib/: put it first on the path
        text += run_mp("bench/mp_driver.py", None, ["_mpy"], path_extra=[mpy])
    finally:
        remove(mpy)
    return text + frozen()


def frozen():
    """Our packages' share of the firmware image: .mpy bytes as the manifest freezes them
    (bytecode: the same for every architecture; xtensawin is compiled)."""
    files = [(t, s) for t, s in manifest.read().files if not t.startswith("mqtt_as")]
    sizes, errs = manifest.compile_sizes(files, "xtensawin")
    if errs:
        raise SystemExit("\n".join(errs))
    return "".join("frozen_mpy_bytes_%s: %d bytes\n" % (top, sizes[top])
                   for top in ("rbamp", "rbnode")) + \
        "frozen_mpy_bytes_ours: %d bytes\n" % sum(sizes.values())


def _script(name):
    """A suite that is a script of its own (it prints its figures)."""
    p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", name)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode:
        raise SystemExit("benchmark %s failed:\n%s" % (name, p.stdout[-3000:]))
    return p.stdout


SUITES = {
    "driver": driver,
    "latency": lambda: _script("latency.py"),
    "energy": lambda: _script("energy.py"),
    "sleep": lambda: _script("sleep_wake.py"),
    "node": lambda: _script("node_heap.py"),
    "node32": lambda: _script("node32.py"),
    "ota": lambda: _script("ota.py"),
}


def report(suite, text):
    figures = {}
    for line in text.splitlines():
        m = re.match(r"(\w+): ([-\d.e+]+|nan) (.+)$", line)
        if m:
            figures[m.group(1)] = {"value": float(m.group(2)), "unit": m.group(3)}
            print(line, flush=True)
    out = os.getenv("BENCH_OUT") or os.path.join(ROOT, "build", "bench")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, suite + ".json"), "w") as f:
        json.dump(figures, f, indent=1, sort_keys=True)


def main(argv):
    for name in argv or list(SUITES):
        if name not in SUITES:
            raise SystemExit("unknown suite %r (suites: %s)" % (name, ", ".join(SUITES)))
        print("# %s" % name, flush=True)
        report(name, SUITES[name]())


if __name__ == "__main__":
    main(sys.argv[1:])
