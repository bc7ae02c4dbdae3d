"""Run the real node (boot.py + main.py + lib/rbnode on the unix port) against a bench, and
read what it keeps (the flash ledger, the sleep state in RTC memory), checked here
independently of lib/rbnode. Used by the tests and the benchmarks.

    with NodeRun(tmp_dir, scenario_dict, config) as run:
        run.wait_for("RT by DRDY")
        run.ctl.set_load(module="ui3", ch=0, load=1500)
        ...
    ledger = read_ledger(run.fs)
"""
import binascii
import json
import os
import signal
import subprocess
import threading
import time

from tools import hostenv
from tools.hostrun import HostNode


class NodeRun:
    def __init__(self, tmp_path, sc, config, env=None, files=("boot.py", "main.py")):
        path = os.path.join(str(tmp_path), "scenario.json")
        with open(path, "w") as f:
            json.dump(sc, f)
        self.bench = hostenv.BenchProcess(path)
        self.ctl = self.bench.client()
        self.node = HostNode(str(tmp_path), self.bench.address, config, env=env,
                             bench_client=self.ctl, files=files)
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


def read_ledger(fs, path="energy"):
    """The newest valid ledger slot, parsed and CRC-checked here (not by lib/rbnode)."""
    best = None
    for i in (0, 1):
        p = os.path.join(fs, "%s.%d" % (path, i))
        if not os.path.exists(p):
            continue
        with open(p, "rb") as f:
            text = f.read().decode()
        body, _, crc = text.rstrip("\n").rpartition("\n")
        if not body or int(crc, 16) != binascii.crc32(body.encode()):
            continue
        doc = json.loads(body)
        if best is None or doc["seq"] > best["seq"]:
            best = doc
    return best


def totals_by_name(ledger):
    """{meter name: [[import_wh, export_wh], ...]} of a ledger document."""
    return {m["name"]: [[c[0] / 1e6, c[1] / 1e6] for c in m["ch"]]
            for m in ledger["meters"].values()}


def rtc_state(board_dir):
    """The sleep state in a host board's RTC memory (None: there is none); ValueError when
    it is not a valid one."""
    p = os.path.join(board_dir, "rtc_memory")
    if not os.path.exists(p):
        return None
    with open(p, "rb") as f:
        data = f.read()
    if data[:4] != b"RBS\x01":
        raise ValueError("RTC memory: bad magic %r" % data[:8])
    body, _, crc = data[4:].decode().rstrip("\n").rpartition("\n")
    if int(crc, 16) != binascii.crc32(body.encode()):
        raise ValueError("RTC memory: CRC mismatch")
    return json.loads(body)
