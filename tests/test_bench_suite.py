"""The benchmark runner (`make bench`): the driver suite runs here (about 30 s; the other
suites take minutes and are run by hand). Its figures are written as JSON with the headline
names, and the deterministic ones (counts) are what the protocol and the driver promise."""
import json
import os
import subprocess
import sys

from tools.host import hostenv

RUN = os.path.join(hostenv.ROOT, "bench", "run.py")


def test_driver_suite_figures(tmp_path):
    p = subprocess.run([sys.executable, RUN, "driver"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300,
                       env=dict(os.environ, BENCH_OUT=str(tmp_path)))
    assert p.returncode == 0, p.stdout
    with open(os.path.join(str(tmp_path), "driver.json")) as f:
        fig = {k: v["value"] for k, v in json.load(f).items()}
    for line in p.stdout.splitlines():       # every figure printed as `name: value unit`
        if not line.startswith("#"):
            name, rest = line.split(": ", 1)
            assert float(rest.split()[0]) == fig[name], line
    # v1.3: the whole RT block in one burst; legacy: a register (2 bytes) per transaction
    assert fig["rt_snapshot_transactions_ui3"] == 1
    assert fig["rt_snapshot_transactions_ui1"] == 1
    assert fig["rt_snapshot_transactions_ui3_legacy"] == fig["rt_snapshot_bytes_ui3_legacy"] / 2
    assert fig["alloc_bytes_per_rt_snapshot"] == 0
    # one General-Call frame and a GC_TICK witness per module, instead of a latch per module
    assert (fig["period_cycle_transactions_fleet3_gc"]
            == fig["period_cycle_transactions_fleet3_sequential"] + 1)
    assert 10000 < fig["driver_import_heap_bytes"] < 100000
    assert fig["frozen_mpy_bytes_ours"] > fig["frozen_mpy_bytes_rbnode"] > 0
