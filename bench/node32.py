"""The node on the chips' memory model (`make bench SUITE=node32 MPY_DIR=...`): the unix port
built 32-bit with float32 and the app frozen (`make firmware BOARD=unix32`), so words, floats
and small ints are the chips' sizes and our bytecode stays out of the heap, as in flash.

The binary: $MICROPYTHON if set (it must be a 32-bit float32 build), else
build/unix32/firmware-* built from MPY_DIR now (a MicroPython checkout with its submodules;
incremental after the first build). Without either the suite is skipped, saying so.

Figures (bench/README.md): the heap of the host board (which the node's figures include), of
`import rbamp` and of the continuous-mode app, then
bench/node_heap.py on that binary (heap after boot, live set, peak, the smallest heap for
5 minutes of the 3-module MQTT scenario), then the same over TLS, then with the app as an
over-the-air update runs it (node32_slot_*: its .mpy files ahead of the frozen modules).
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools.host import hostenv  # noqa: E402

IMPORTS = """
import gc
gc.collect(); h = gc.mem_alloc()
import machine, network
gc.collect(); a = gc.mem_alloc()
import rbamp
gc.collect(); b = gc.mem_alloc()
from rbnode import app, node
from rbnode.net import publisher
gc.collect(); c = gc.mem_alloc()
print("node32_host_board_bytes: %d bytes (machine, network: C modules on a chip)" % (a - h))
print("node32_import_rbamp_bytes: %d bytes" % (b - a))
print("node32_import_app_bytes: %d bytes (rbamp, rbnode continuous mode, mqtt_as)" % (c - a))
print("node32_frozen:", "rbnode" in str(app.__file__) and not app.__file__.startswith("/"))
"""


def binary():
    """The unix32 build to measure, or None with the reason."""
    given = os.getenv("MICROPYTHON")
    if given:
        return given, None
    mpy_dir = os.getenv("MPY_DIR")
    if not mpy_dir:
        return None, ("no MicroPython tree: pass MPY_DIR=<a MicroPython checkout with its "
                      "submodules> (or MICROPYTHON=<a `make firmware BOARD=unix32` binary>)")
    from tools import firmware
    try:
        return firmware.build("unix32", mpy_dir), None
    except subprocess.CalledProcessError as e:
        raise SystemExit("make firmware BOARD=unix32 failed (exit %d)" % e.returncode)


def check(exe):
    p = subprocess.run([exe, "-c", "import sys; print(sys.maxsize, float('1e39'))"],
                       capture_output=True, text=True)
    if p.stdout.split() != ["2147483647", "inf"]:
        raise SystemExit("%s is not a 32-bit float32 build (sys.maxsize, 1e39: %r): build it "
                         "with `make firmware BOARD=unix32 MPY_DIR=...`" % (exe, p.stdout))


def main():
    exe, why = binary()
    if exe is None:
        print("node32: skipped: %s" % why)
        return
    check(exe)
    os.environ["MICROPYTHON"] = os.path.abspath(exe)     # for run_mp and node_heap.py
    p = hostenv.run_mp("-c", [IMPORTS], hostenv.node_env(
        extra={"MICROPYPATH": hostenv.micropypath(frozen_first=True)}))
    if p.returncode or "node32_frozen: True" not in p.stdout:
        raise SystemExit("the imports on %s failed (or the app is not frozen in it):\n%s"
                         % (exe, p.stdout[-2000:]))
    print(p.stdout, end="", flush=True)
    for extra in (["--frozen"], ["--frozen", "--tls"],
                  ["--slot", "--prefix", "node32_slot", "--step", "8"]):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "node_heap.py"),
                            "--prefix", "node32", "--step", "4"] + extra)
        if r.returncode:
            raise SystemExit("bench/node_heap.py %s failed" % " ".join(extra))


if __name__ == "__main__":
    main()
