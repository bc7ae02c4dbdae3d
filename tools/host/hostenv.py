"""Paths and processes shared by the host tools and the tests (CPython).

Everything that starts MicroPython on the host builds its environment here, so the
tests, `make run` and the benchmarks run firmware code exactly the same way.
"""
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOSTBOARD = os.path.join(ROOT, "tools", "host", "board")
LIB = os.path.join(ROOT, "lib")
MP_USER_LIB = os.getenv("MICROPY_LIB") or os.path.expanduser("~/.micropython/lib")  # mqtt_as


def micropython():
    """The unix-port binary: $MICROPYTHON if set (any build: `make firmware BOARD=unix32`'s
    runs the tests and benchmarks on the chips' memory model), else the project venv's, else
    one on PATH."""
    given = os.getenv("MICROPYTHON")
    if given:
        if not (os.path.isfile(given) and os.access(given, os.X_OK)):
            raise RuntimeError("MICROPYTHON=%s is not an executable file" % given)
        return os.path.abspath(given)
    venv = os.path.join(ROOT, ".venv", "bin", "micropython")
    if os.path.exists(venv):
        return venv
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython (unix port) not found: run `make setup` first")
    return found


def micropypath(extra=(), frozen_first=False, lib=LIB):
    """Host shims first (they shadow machine/network), then our lib, the frozen modules,
    then the user library where mqtt_as is installed. frozen_first: the binary's frozen
    modules first (a `make firmware` build runs its own frozen app, as a chip does, and
    BOARD=unix32's frozen host board). lib: the app's tree (an OTA board: the one its
    bootloader unpacked, tools/host/espboot.py)."""
    mid = [".frozen", HOSTBOARD, lib] if frozen_first else [HOSTBOARD, lib, ".frozen"]
    return ":".join(list(extra) + mid + [MP_USER_LIB])


def node_env(bench=None, board_dir=None, extra=None, path_extra=()):
    env = dict(os.environ)
    env["MICROPYPATH"] = micropypath(path_extra)
    if bench:
        env["RBAMP_SIM"] = "%s:%d" % bench
    else:
        env.pop("RBAMP_SIM", None)
    if board_dir:
        env["HOSTBOARD_DIR"] = board_dir
    env.update(extra or {})
    return env


def run_mp(script, args=(), env=None, timeout=120, cwd=None):
    """Run a MicroPython script on the unix port (default: the host-board path, no bench);
    returns the CompletedProcess with stdout and stderr merged."""
    return subprocess.run([micropython(), script] + list(args), cwd=cwd or ROOT,
                          env=env or node_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def fresh_copy(dest):
    """The tracked files of this tree in dest (what a fresh clone holds, nothing built or
    configured), with this tree's .venv linked in (`make setup` done)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\n")
    for f in filter(None, files):
        os.makedirs(os.path.dirname(os.path.join(dest, f)), exist_ok=True)
        shutil.copy(os.path.join(ROOT, f), os.path.join(dest, f))
    os.symlink(os.path.join(ROOT, ".venv"), os.path.join(dest, ".venv"))
    return dest


class SimProcess:
    """The simulator (tools/host/sim) as a child process; `address` is (host, port) once ready."""

    def __init__(self, scenario=None, quiet=True):
        cmd = [sys.executable, "-m", "tools.host.sim.server", "--port", "0"]
        if scenario:
            cmd += ["--scenario", scenario]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL if quiet else None, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("SIM READY"):
            self.proc.kill()
            raise RuntimeError("the simulator did not start: %r" % line)
        host, port = line.split()[2].rsplit(":", 1)
        self.address = (host, int(port))

    def client(self):
        from tools.host.sim.client import SimClient
        return SimClient(*self.address)

    def stop(self):
        stop_process(self.proc)


def stop_process(proc, grace=5.0):
    """Terminate a child process, and kill it if it does not end within `grace` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_port(host, port, timeout=5.0):
    import socket
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False
