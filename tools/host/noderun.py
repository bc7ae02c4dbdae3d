"""Run the real node (boot.py + main.py + lib/rbnode on the unix port) against a simulator, for
the tests and the benchmarks; what it keeps is read by tools/host/nodefiles.py.

    with NodeRun(tmp_dir, scenario_dict, config) as run:
        run.wait_for("RT by DRDY")
        run.ctl.set_load(module="ui3", ch=0, load=1500)
        ...
    ledger = read_ledger(run.fs)
"""
import json
import os
import signal
import subprocess
import threading
import time

from tools.host import hostenv
from tools.host.hostrun import HostNode


class NodeRun:
    def __init__(self, tmp_path, sc, config, env=None, files=("boot.py", "main.py"), ota=False):
        path = os.path.join(str(tmp_path), "scenario.json")
        with open(path, "w") as f:
            json.dump(sc, f)
        self.bench = hostenv.SimProcess(path)
        self.ctl = self.bench.client()
        self.node = HostNode(str(tmp_path), self.bench.address, config, env=env,
                             bench_client=self.ctl, files=files, ota=ota)
        self.fs = self.node.fs
        self.lines = []
        self._cv = threading.Condition()
        self.proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        self.bench.stop()
        with open(os.path.join(self.node.fs, "..", "node.log"), "w") as f:
            f.write(self.output() + "\n")

    def start(self):
        self.proc = self.node.start(stdout=subprocess.PIPE)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _pump(self, proc):
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            with self._cv:
                self.lines.append(line)
                self._cv.notify_all()

    def wait_for(self, text, timeout=30, start=0):
        """Index of the first line (from `start`) containing text."""
        deadline = time.monotonic() + timeout
        exited = False
        with self._cv:
            while True:
                for i in range(start, len(self.lines)):
                    if text in self.lines[i]:
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and exited):
                    raise AssertionError("node never printed %r; output:\n%s"
                                         % (text, "\n".join(self.lines[-40:])))
                exited = self.proc.poll() is not None   # one more look at late output
                self._cv.wait(min(left, 0.2))

    def stop(self, sig=signal.SIGINT, timeout=10):
        """SIGINT = Ctrl-C: the node saves its ledger and ends. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode

    def kill(self):
        self.node.kill()

    def output(self):
        return "\n".join(self.lines)
