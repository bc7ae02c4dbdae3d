"""A pinned Home Assistant for the tests, in a cached venv outside the work tree (CPython).

    python tools/ha_env.py [--if-possible]   # make ha-setup: create or complete the venv
    from tools.ha_env import venv_python, missing
    missing() -> None, or the one line that says why the real-HA tests cannot run

Home Assistant installs its integrations' requirements when it loads them; here there is no
network at run time, so every requirement of every integration it will load (its default
set, their dependencies and ours: mqtt, energy, recorder, history, ...) is installed up front,
with HA's own package_constraints.txt. HA 2025.4.4 is the newest release that runs on Python
3.13.0 (2025.5 needs 3.13.2); about 3 minutes and 0.8 GB the first time.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

HA_VERSION = "2025.4.4"
CACHE = os.getenv("RBNODE_HA_VENV") or os.path.expanduser(
    "~/.cache/rbnode/ha-%s" % HA_VERSION)
OURS = ("mqtt", "energy", "recorder", "history", "sensor", "api", "websocket_api", "onboarding",
        "auth", "config", "http", "homeassistant", "persistent_notification", "logger",
        "system_log", "network")


def find_python():
    """A Python 3.13 that runs HA 2025.4.4 (>= 3.13.0), or None."""
    cands = [os.getenv("RBNODE_HA_PYTHON"), shutil.which("python3.13")]
    cands += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13.*/bin/python")))
    for c in cands:
        if c and os.path.exists(c) and _runs_313(c):
            return c
    return None


def _runs_313(py):
    """A pyenv shim exists for every installed version but fails (exit 127) unless that
    version is selected: ask the interpreter itself."""
    try:
        out = subprocess.run([py, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == "True"


def venv_python():
    return os.path.join(CACHE, "bin", "python")


def _site(py):
    out = subprocess.run([py, "-c", "import homeassistant, os; print(os.path.dirname("
                          "homeassistant.__file__))"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def integrations(ha_dir):
    """Every integration HA loads for our configuration: its default set (bootstrap.py),
    ours, and their dependencies, transitively."""
    boot = {}
    with open(os.path.join(ha_dir, "bootstrap.py")) as f:
        src = f.read()
    for name in ("CORE_INTEGRATIONS", "DEFAULT_INTEGRATIONS"):
        i = src.index(name + " = {")
        boot[name] = set(eval(src[i + len(name) + 3:src.index("}", i) + 1]))  # noqa: S307
    todo = set(OURS) | boot["CORE_INTEGRATIONS"] | boot["DEFAULT_INTEGRATIONS"]
    seen = {}
    while todo:
        d = todo.pop()
        if d in seen:
            continue
        path = os.path.join(ha_dir, "components", d, "manifest.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            seen[d] = json.load(f)
        todo |= set(seen[d].get("dependencies", []))
    return seen


def requirements(ha_dir):
    reqs = set()
    for man in integrations(ha_dir).values():
        reqs |= set(man.get("requirements", []))
    return sorted(reqs)


def missing():
    """None when the real-HA tests can run, else one line naming what is missing."""
    if sys.platform != "linux":
        return "real-HA tests: Linux only"
    if not os.path.exists(venv_python()):
        return ("real-HA tests skipped: no Home Assistant %s venv at %s (run `make ha-setup`; "
                "needs Python 3.13 and PyPI)" % (HA_VERSION, CACHE))
    if not complete():
        return "real-HA tests skipped: the venv at %s is incomplete (run `make ha-setup`)" % CACHE
    return None


def complete():
    try:
        with open(os.path.join(CACHE, ".complete")) as f:
            return f.read().strip() == HA_VERSION
    except OSError:
        return False


def setup(if_possible=False):
    """Create or complete the venv. if_possible (make test): without a Python 3.13 say so in
    one line and go on; a complete venv costs nothing."""
    if complete():
        print("[ha-setup] ok: Home Assistant %s at %s" % (HA_VERSION, CACHE))
        return
    py = find_python()
    if not py:
        msg = "no Python 3.13 (pyenv install 3.13.0, or set RBNODE_HA_PYTHON)"
        if if_possible:
            print("[ha-setup] skipped: %s: the real-HA tests will be skipped" % msg)
            return
        sys.exit("ha-setup: " + msg)
    print("[ha-setup] Home Assistant %s into %s (about 3 min and 0.8 GB, once)"
          % (HA_VERSION, CACHE))
    if not os.path.exists(venv_python()):
        os.makedirs(os.path.dirname(CACHE), exist_ok=True)
        subprocess.run([py, "-m", "venv", CACHE], check=True)
    pip = [venv_python(), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not _site(venv_python()):
        subprocess.run(pip + ["homeassistant==%s" % HA_VERSION], check=True)
    ha_dir = _site(venv_python())
    reqs = requirements(ha_dir)
    print("[ha-setup] %d requirements of %d integrations" % (
        len(reqs), len(integrations(ha_dir))))
    subprocess.run(pip + ["-c", os.path.join(ha_dir, "package_constraints.txt")] + reqs,
                   check=True)
    with open(os.path.join(CACHE, ".complete"), "w") as f:
        f.write(HA_VERSION + "\n")
    print("[ha-setup] ok: %s" % CACHE)


if __name__ == "__main__":
    setup(if_possible="--if-possible" in sys.argv)
