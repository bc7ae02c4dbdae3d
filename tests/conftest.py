"""pytest harness.

- tests/test_*.py run in CPython (bench model, host tools).
- tests/mp/test_*.py are MicroPython scripts run on the unix port: one subprocess per file,
  one pytest item per `def test_*` in it, each file in a fresh temporary directory (its cwd and
  host-board directory). Header comments configure the file:
      # sim: <scenario name or path>   start a simulator, RBAMP_SIM points at it
      # broker: yes                       start a private mosquitto, MQTT_HOST/MQTT_PORT set
                                          (MQTT_PID: its process, to pause it)
      # timeout: <seconds>                default 120
  A script that prints `SKIP` alone on a line is skipped (MicroPython test-suite rule).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.host import hostenv  # noqa: E402
from tools.host.broker import Broker  # noqa: E402
from tools.host.hostenv import run_mp  # noqa: E402

MP_DIR = os.path.join(ROOT, "tests", "mp")

# A suite started in the background (a shell's `&`, a CI agent) has SIGINT ignored, and every
# process it starts inherits that: the nodes and tools the tests stop with Ctrl-C would never
# see it. Python's own handler here means SIGINT is default again in every child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long end-to-end suite (a real Home Assistant, "
                            "the updates over the air, the power-loss campaign): "
                            "`make test-slow`, which CI runs too")


@pytest.fixture
def broker():
    b = Broker()
    yield b
    b.stop()


@pytest.fixture
def bench():
    """A simulator with the default scenario; yields the SimProcess."""
    b = hostenv.SimProcess()
    yield b
    b.stop()


def pytest_pycollect_makemodule(module_path, parent):
    if os.path.dirname(str(module_path)) == MP_DIR and module_path.name.startswith("test_"):
        return MpFile.from_parent(parent, path=module_path)
    return None


class MpFile(pytest.File):
    def collect(self):
        src = self.path.read_text()
        self.header = dict(re.findall(r"^# (sim|broker|timeout): *(\S+)", src, re.M))
        self.names = re.findall(r"^def (test_\w+)\(", src, re.M)
        self.result = None
        for n in self.names:
            yield MpItem.from_parent(self, name=n)

    def run_once(self):
        if self.result is not None:
            return self.result
        bench = broker = None
        extra = {}
        try:
            if "sim" in self.header:
                sc = self.header["sim"]
                bench = hostenv.SimProcess(None if sc == "default" else sc)
            if self.header.get("broker") == "yes":
                broker = Broker()
                extra = {"MQTT_HOST": broker.host, "MQTT_PORT": str(broker.port),
                         "MQTT_PID": str(broker.proc.pid)}
            board = tempfile.mkdtemp(prefix="rbnode-board-")
            env = hostenv.node_env(bench.address if bench else None, board, extra,
                                   path_extra=[MP_DIR])
            try:
                p = run_mp(str(self.path), self.names, env, cwd=board,
                           timeout=int(self.header.get("timeout", 120)))
                out, rc = p.stdout, p.returncode
            except subprocess.TimeoutExpired as e:
                out, rc = (e.stdout or "") + "\n[timed out]", -1
        finally:
            for x in (bench, broker):
                if x:
                    x.stop()
        self.result = (out, rc, parse(out))
        return self.result


def parse(out):
    res, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"@@ (PASS|FAIL|SKIP) (\w+) ?(.*)", line)
        if m:
            cur = m.group(2)
            res[cur] = [m.group(1), m.group(3)]
        elif cur and res[cur][0] == "FAIL":
            res[cur][1] += "\n" + line
    return res


class MpItem(pytest.Item):
    def runtest(self):
        out, rc, res = self.parent.run_once()
        if re.search(r"^SKIP\s*$", out, re.M):
            pytest.skip("script printed SKIP")
        r = res.get(self.name)
        if r is None:
            raise MpFailure("no result for %s (exit %d); output:\n%s" % (self.name, rc, out[-4000:]))
        if r[0] == "SKIP":
            pytest.skip(r[1])
        if r[0] == "FAIL":
            raise MpFailure(r[1])

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MpFailure):
            return "%s (unix port) failed:\n%s" % (self.name, excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, "mp: %s" % self.name


class MpFailure(Exception):
    pass
