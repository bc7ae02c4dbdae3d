"""The development loop a user runs (README, "Working on the code"): `make deploy` and
`make dev` with the real mpremote, against the unix port standing in for a board on a
pseudo-terminal (tools/host/serialboard.py), from a fresh copy of the tracked files."""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from tools.host import hostenv

EDIT = 'print("DEV LOOP: edited in the working tree")\n'


class Lines:
    """A process's output, line by line, read by a thread (so waiting never blocks)."""

    def __init__(self, proc):
        self.proc = proc
        self.seen = []
        self.ended = False
        self._q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._q.put(line)
        self._q.put(None)

    def _lines(self, limit):
        end = time.monotonic() + limit
        while not self.ended and time.monotonic() < end:
            try:
                line = self._q.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                self.ended = True
                return
            self.seen.append(line)
            yield line

    def wait_for(self, needle, limit=120):
        """Lines up to the first holding needle; fails with all the output if the process
        ends first (limit only guards against a hang)."""
        for line in self._lines(limit):
            if needle in line:
                return line
        pytest.fail("%r never came:\n%s" % (needle, "".join(self.seen)))

    def rest(self, limit=120):
        """Everything up to the end of the output."""
        for _ in self._lines(limit):
            pass
        return "".join(self.seen)


def make(tree, *args, **kw):
    return subprocess.Popen(["make", "--no-print-directory"] + list(args), cwd=tree,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kw)


def ctrl_c(proc):
    """What a terminal does on Ctrl-C: SIGINT to the foreground process group."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # make is gone; mpremote may still be leaving the board's REPL tidy, holding the port
    for _ in range(300):
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def board(tmp_path):
    d = tmp_path / "board"
    p = subprocess.Popen([sys.executable, os.path.join(hostenv.ROOT, "tools", "host", "serialboard.py"),
                          str(d)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("SERIALBOARD READY "), line
    yield d, line.split()[2]
    hostenv.stop_process(p)


def test_deploy_then_dev_runs_an_edit_without_a_reflash(tmp_path, board):
    tree = hostenv.fresh_copy(str(tmp_path / "clone"))
    with open(os.path.join(tree, "config.example.json")) as f:
        cfg = json.load(f)
    cfg["mqtt"]["host"] = ""        # measuring only: the loop, not the network, is tested
    with open(os.path.join(tree, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    bdir, port = board
    console = bdir / "console.log"

    # make deploy: the three files on the board's flash, the board restarts into the node
    p = make(tree, "deploy", "PORT=" + port)
    out = p.communicate(timeout=120)[0]
    assert p.returncode == 0, out
    for f in ("boot.py", "main.py", "config.json"):
        with open(os.path.join(tree, f), "rb") as a, open(bdir / "fs" / f, "rb") as b:
            assert a.read() == b.read(), f
    deadline = time.monotonic() + 120
    while b"3 of 3 module(s) measuring" not in console.read_bytes():
        assert time.monotonic() < deadline, console.read_text(errors="replace")
        time.sleep(0.2)

    # make dev: mpremote mounts the tree and runs main.py from it, the board's own stopped
    dev = Lines(make(tree, "dev", "PORT=" + port))
    dev.wait_for("is mounted at /remote")
    dev.wait_for("3 of 3 module(s) measuring")
    ctrl_c(dev.proc)
    text = dev.rest()
    assert "node: stopped (ledger saved)" in text, text      # through the mount, to the tree
    assert "the board is at its REPL" in text, text
    assert os.path.exists(os.path.join(tree, "energy.0")) or \
        os.path.exists(os.path.join(tree, "energy.1")), os.listdir(tree)

    # an edit in the working tree (a library module: it shadows the frozen copy) runs at the
    # next `make dev`, with nothing copied to the board
    app = os.path.join(tree, "lib", "rbnode", "app.py")
    with open(app) as f:
        src = f.read()
    i = src.index("def run(")
    i = src.index('"""', src.index('"""', i) + 3) + 3          # after run()'s docstring
    with open(app, "w") as f:
        f.write(src[:i] + "\n    " + EDIT.strip() + src[i:])
    dev = Lines(make(tree, "dev", "PORT=" + port))
    dev.wait_for("DEV LOOP: edited in the working tree")
    dev.wait_for("3 of 3 module(s) measuring")
    ctrl_c(dev.proc)
    dev.rest()
    assert "lib" not in os.listdir(bdir / "fs")             # nothing of lib/ on the board
    text = "".join(dev.seen)
    assert "Traceback" not in text and "SAFE MODE" not in text, text
