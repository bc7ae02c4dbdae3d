"""Run the real node (boot.py + main.py + lib/rbnode on the unix port) against a simulator
(tools/host/noderun.py), with the tests' scenarios and a base config.

    with NodeRun(tmp_path, "energy.json", config) as run:
        run.wait_for("RT by DRDY")
        run.ctl.set_load(module="ui3", ch=0, load=1500)
        ...
    ledger = read_ledger(run.fs)      # checked here independently of lib/rbnode
"""
import json
import os

from tools.host.nodefiles import read_ledger, rtc_state, totals_by_name  # noqa: F401
from tools.host.noderun import NodeRun  # noqa: F401

from tools.host.sim.scenario import SCENARIOS  # noqa: E402


def scenario(name, **patch):
    """A scenario of the simulator's (tools/host/sim/scenarios) with module options
    patched: {name: {opt: v}}."""
    with open(os.path.join(SCENARIOS, name)) as f:
        sc = json.load(f)
    for m in sc["modules"]:
        m.update(patch.get(m["name"], {}))
    return sc


def base_config(**kw):
    cfg = {"log_level": "info", "period_s": 10, "save_s": 30, "watchdog_s": 0,
           "drdy_pin": 4, "modules": [], "time": {"ntp": []}}     # the host's clock
    cfg.update(kw)
    return cfg
