"""The host runner: deep sleep, reset and watchdog restarts with the right reset cause,
RTC memory kept across them, simulated time fast-forwarded during deep sleep."""
import re
import subprocess

from tools.host.hostrun import DEEPSLEEP, PWRON, SOFT, WDT, HostNode

SLEEPER = """
import machine, time
r = machine.RTC()
n = r.memory()[0] if r.memory() else 0
print("boot", n, "cause", machine.reset_cause(), "epoch", time.mktime(r.datetime()[:3] + r.datetime()[4:7] + (0, 0)))
r.memory(bytes([n + 1]))
if n < 3:
    machine.deepsleep(600000)
elif n == 3:
    machine.reset()
elif n == 4:
    w = machine.WDT(timeout=300)
    while True:
        time.sleep_ms(1000)   # hung: never feeds
"""


def run_cycles(node):
    lines = []
    while True:
        p = node.start(stdout=subprocess.PIPE)
        out, _ = p.communicate(timeout=30)
        lines += out.decode().splitlines()
        if node.finish() is None:
            return lines


def test_deepsleep_reset_and_watchdog_cycle(tmp_path, bench):
    ctl = bench.client()
    node = HostNode(str(tmp_path), bench.address, files={"main.py": SLEEPER}, bench_client=ctl)
    t0 = ctl.time()["t_us"]
    lines = run_cycles(node)
    boots = [ln.split() for ln in lines if ln.startswith("boot")]
    assert [b[1] for b in boots] == ["0", "1", "2", "3", "4", "5"]
    causes = [int(b[3]) for b in boots]
    assert causes == [PWRON, DEEPSLEEP, DEEPSLEEP, DEEPSLEEP, SOFT, WDT]
    epochs = [int(b[5]) for b in boots]
    assert epochs[3] - epochs[0] >= 1800           # three 10-minute sleeps on the RTC clock
    assert ctl.time()["t_us"] - t0 >= 1800e6       # the simulator fast-forwarded meanwhile
    assert any("WDT" in ln for ln in lines)
    # the modules measured through the sleeps: 30 min of RT commits on each
    truth = ctl.truth()["truth"]
    assert truth["mains"][0][0] > 180 * 1800 / 3600


def test_power_on_clears_rtc_memory(tmp_path, bench):
    node = HostNode(str(tmp_path), bench.address, bench_client=bench.client(),
                    files={"main.py": "import machine\nprint(machine.RTC().memory())\n"
                                      "machine.RTC().memory(b'kept')\n"})
    for expect in ("b''", "b''"):
        p = node.start(stdout=subprocess.PIPE)
        out, _ = p.communicate(timeout=30)
        assert out.decode().strip() == expect
        assert node.finish() is None
        node.power_on()


def test_make_run_on_a_fresh_clone_measures_and_publishes(tmp_path):
    """The README's first command on a fresh copy of the tracked files (no config.json): the
    example config, a private broker, the node measuring and connected (not safe mode), live
    values and energy totals printed as they are published, at the end the node's totals
    beside the simulator's truth."""
    import os
    import sys
    from tools.host import hostenv
    copy = tmp_path / "clone"
    hostenv.fresh_copy(str(copy))
    assert not (copy / "config.json").exists()
    p = subprocess.run([sys.executable, os.path.join("tools", "host", "hostrun.py"),
                        "--duration", "14"], cwd=str(copy),
                       capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "SAFE MODE" not in out and "Traceback" not in out, out
    assert "3 of 3 module(s) measuring" in out, out
    assert "link: connected" in out, out
    assert re.search(r"\[live\] mains: 230\.0 V 50\.00 Hz \| ch0 [\d.]+ W", out), out
    assert re.search(r"\[live\] mains: energy ch0 import \d+\.\d{6} kWh", out), out
    assert re.search(r"\[run\]   node  mains: ch0 import [\d.]+ Wh \([-+][\d.]+ %\)", out), out
    # the difference shown is the difference of the two figures shown beside it
    truth = float(re.search(r"\[run\]   truth mains: ch0 import ([\d.]+) Wh", out).group(1))
    node, pct = re.search(r"\[run\]   node  mains: ch0 import ([\d.]+) Wh \(([-+][\d.]+) %\)",
                          out).groups()
    assert abs((float(node) - truth) * 100 / truth - float(pct)) < 0.02, out
