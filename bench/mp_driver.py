# Driver figures on the unix port (run by bench/run.py). Prints `name: value unit`.
import gc

gc.collect()
_a = gc.mem_alloc()
import rbamp  # noqa: E402

gc.collect()
print("driver_import_heap_bytes%s: %d bytes" % (__import__("sys").argv[1] if len(__import__("sys").argv) > 1 else "", gc.mem_alloc() - _a))

import sys  # noqa: E402

if len(sys.argv) > 1:  # the .mpy run only measures the import
    sys.exit(0)

import _bench  # noqa: E402
import machine  # noqa: E402

i2c = machine.I2C(0, freq=50000)
N = 50


def bus(addr):
    c = _bench.ctl("counters", reset=True)["counters"].get(str(addr))
    return c or {"transactions": 0, "bus_us": 0.0, "bytes": 0}


for name, addr, variant in (("ui1", 0x50, None), ("ui3", 0x51, None),
                            ("ui1_legacy", 0x52, "UI1"), ("ui3_legacy", 0x53, "UI3")):
    d = rbamp.RbAmp(i2c, addr, variant=variant).begin(prime=False)
    bus(addr)
    for _ in range(N):
        d.read_rt()
    c = bus(addr)
    print("rt_snapshot_transactions_%s: %g transactions" % (name, c["transactions"] / N))
    print("rt_snapshot_bus_ms_%s: %.2f ms at 50 kHz" % (name, c["bus_us"] / N / 1000))
    if name == "ui3":
        for _ in range(5):
            d.read_rt()
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        for _ in range(N):
            d.read_rt()
        b = gc.mem_alloc()
        gc.enable()
        print("alloc_bytes_per_rt_snapshot: %g bytes" % ((b - a) / N))
    d.prime()
    bus(addr)
    import time
    time.sleep_ms(300)
    bus(addr)
    d.read_period_snapshot()
    c = bus(addr)
    print("period_cycle_transactions_%s: %d transactions" % (name, c["transactions"]))
    print("period_cycle_bus_ms_%s: %.2f ms at 50 kHz" % (name, c["bus_us"] / 1000))
