"""Helpers shared by the benchmark scripts (CPython side)."""
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tools import boards, manifest  # noqa: E402
from tools.host import hostenv  # noqa: E402


def compile_libs(pkgs=("rbamp", "rbnode")):
    """lib/<pkg> compiled by mpy-cross (-O1, for the unix port) into a new directory, as the
    packages are in the firmware image (frozen bytecode needs even less RAM: it stays in
    flash). Returns the directory; put it first on MICROPYPATH."""
    out = tempfile.mkdtemp(prefix="rbnode-mpy-")
    for pkg in pkgs:
        os.makedirs(os.path.join(out, pkg))
        for f in os.listdir(os.path.join(ROOT, "lib", pkg)):
            if f.endswith(".py"):
                r = manifest.mpy_cross(os.path.join(ROOT, "lib", pkg, f), pkg + "/" + f,
                                       boards.get("unix")["arch"],
                                       os.path.join(out, pkg, f[:-3] + ".mpy"), opt=1)
                if r.returncode:
                    raise SystemExit("mpy-cross %s/%s: %s" % (pkg, f, r.stderr or r.stdout))
    return out


def remove(path):
    shutil.rmtree(path, ignore_errors=True)


def run_mp(script, bench=None, args=(), path_extra=(), timeout=600):
    """A MicroPython script on the unix port (host board, the simulator if given); its output.
    A failure ends the benchmark with the output."""
    env = hostenv.node_env(bench.address if bench else None, tempfile.mkdtemp(), None,
                           path_extra)
    p = hostenv.run_mp(script, args, env, timeout=timeout)
    if p.returncode:
        raise SystemExit("benchmark %s failed:\n%s" % (script, p.stdout[-3000:]))
    return p.stdout


def pct(values, q):
    """The q-th percentile (0..100) of values, nearest rank."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]
