# Driver figures on the unix port (run by bench/run.py). Prints `name: value unit`.
# With an argument (a suffix for the names) it only measures the import (the .mpy run).
import gc

gc.collect()
_a = gc.mem_alloc()
import rbamp  # noqa: E402

gc.collect()
_import = gc.mem_alloc() - _a

import sys  # noqa: E402
import time  # noqa: E402

print("driver_import_heap_bytes%s: %d bytes" % (sys.argv[1] if len(sys.argv) > 1 else "", _import))
if len(sys.argv) > 1:
    sys.exit(0)

import _sim  # noqa: E402
import machine  # noqa: E402
from rbamp.fleet import Fleet  # noqa: E402

i2c = machine.I2C(0, freq=50000)
N = 50
FLEET = (0x60, 0x61, 0x62)


def bus():
    """Sums of the simulator's counters since the last call (every address, General Call too)."""
    cs = _sim.ctl("counters", reset=True)["counters"].values()
    return {k: sum(c[k] for c in cs) for k in ("transactions", "bytes", "bus_us")}


def figure(name, c, n=1):
    print("%s_transactions%s: %g transactions" % (name[0], name[1], c["transactions"] / n))
    print("%s_bytes%s: %g bytes" % (name[0], name[1], c["bytes"] / n))
    print("%s_bus_ms%s: %.2f ms at 50 kHz" % (name[0], name[1], c["bus_us"] / n / 1000))


def allocated(fn, n):
    """Bytes allocated per call of fn after warm-up (GC off while measuring)."""
    for _ in range(3):
        fn()
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for _ in range(n):
        fn()
    b = gc.mem_alloc()
    gc.enable()
    return (b - a) / n


def settle():
    time.sleep_ms(300)     # a period of a few windows between latches


def one_cycle(d):
    settle()
    d.read_period_snapshot()


for name, addr, variant in (("ui1", 0x50, None), ("ui3", 0x51, None),
                            ("ui1_legacy", 0x52, "UI1"), ("ui3_legacy", 0x53, "UI3")):
    d = rbamp.RbAmp(i2c, addr, variant=variant).begin(prime=False)
    bus()
    for _ in range(N):
        d.read_rt()
    figure(("rt_snapshot", "_" + name), bus(), N)
    if name == "ui3":
        print("alloc_bytes_per_rt_snapshot: %g bytes" % allocated(d.read_rt, N))
    d.prime()
    settle()
    bus()
    d.read_period_snapshot()
    figure(("period_cycle", "_" + name), bus())
    if name == "ui3":
        print("alloc_bytes_per_period_cycle: %g bytes" % allocated(lambda: one_cycle(d), 5))

fleet = Fleet(i2c, addrs=FLEET).begin()
if not fleet.gc:
    raise SystemExit("the fleet modules do not take General-Call latches")
for mode in ("gc", "sequential"):
    fleet.gc = mode == "gc"
    settle()
    bus()
    out = fleet.read_all()
    c = bus()
    bad = [m.addr for m, s in out if not hasattr(s, "valid") or not s.valid]
    if bad:
        raise SystemExit("fleet period cycle (%s): no valid snapshot from %s" % (mode, bad))
    figure(("period_cycle", "_fleet3_" + mode), c)
    print("alloc_bytes_per_period_cycle_fleet3_%s: %g bytes" % (
        mode, allocated(lambda: (settle(), fleet.read_all()), 5)))
