"""MicroPython scripts run by the CPython tests on the unix port (hostenv.run_mp), and the one
check every parser of user text gets: each wrong input refused with a ValueError."""
import json

from tools.host.hostenv import run_mp

REFUSE = """
import json, sys
mod, name = sys.argv[2].split(":")
make = getattr(__import__(mod, None, None, [name]), name)
for x in json.load(open(sys.argv[1])):
    try:
        make(x)
        print("ACCEPTED", x)
    except ValueError as e:
        print("REFUSED", e)
"""


def run_script(tmp_path, name, text, args=(), timeout=120, cwd=None, env=None):
    """Write text to tmp_path/name and run it (in cwd: default the repository; env: default
    the host board's, hostenv.node_env()); returns the CompletedProcess."""
    script = tmp_path / name
    script.write_text(text)
    return run_mp(str(script), [str(a) for a in args], env=env, timeout=timeout, cwd=cwd)


def refusals(tmp_path, what, inputs):
    """what ("rbnode.tz:Zone") called on each input on the unix port: one line each,
    "REFUSED <message>" or "ACCEPTED <input>"."""
    src = tmp_path / "inputs.json"
    src.write_text(json.dumps(inputs))
    p = run_script(tmp_path, "refuse.py", REFUSE, [src, what])
    lines = p.stdout.strip().splitlines()
    assert len(lines) == len(inputs), p.stdout
    return lines
