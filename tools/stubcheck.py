"""Static check of lib/, boot.py and main.py against the MicroPython stubs of each target
(micropython-*-stubs, pinned below) with pyright: no module, function, constant or keyword
argument that the target's firmware lacks.

    python tools/stubcheck.py [BOARD ...]      # make stubcheck (all boards)

Reported: imports the target cannot resolve, attributes a target module does not have, and
calls with a keyword or argument count the target's signature lacks. Type-precision findings
(Optional narrowing, mixins) are not the point and are not reported. Code that only runs on
CPython or on the host (a guarded fallback) says so with `# pyright: ignore[rule]` on its line.
The stubs are installed into build/stubs/<board>/ on first use.
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import boards, deps  # noqa: E402

STUBS = {
    "ESP32_GENERIC": "micropython-esp32-stubs==1.29.0.post1",
    "ESP32_GENERIC_S3": "micropython-esp32-esp32_generic_s3-stubs==1.29.0.post1",
    "RPI_PICO_W": "micropython-rp2-rpi_pico_w-stubs==1.29.0.post1",
}
CHECKED = ["lib", "boot.py", "main.py"]
API = re.compile(r"is not a known attribute of module|is unknown import symbol|"
                 r"No parameter named|Expected \d+ positional argument")


def stubs(board):
    d = os.path.join(boards.ROOT, "build", "stubs", board)
    stamp = os.path.join(d, ".pinned")
    if not os.path.exists(stamp) or open(stamp).read() != STUBS[board]:
        print("[stubcheck] installing %s" % STUBS[board], flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--upgrade", "--target", d, STUBS[board]], check=True)
        with open(stamp, "w") as f:
            f.write(STUBS[board])
    return d


def check(board, paths=None):
    """[(file, line, message)] of the target API findings for `paths` (default: CHECKED)."""
    d = stubs(board)
    cfg_dir = os.path.join(boards.ROOT, "build", "stubs", board + "-check")
    os.makedirs(cfg_dir, exist_ok=True)
    built = deps.prepare()             # mqtt_as as frozen, rbnode_build
    cfg = {"include": [os.path.relpath(os.path.join(boards.ROOT, p), cfg_dir)
                       for p in (paths or CHECKED)],
           "typeshedPath": d, "stubPath": d, "pythonVersion": "3.11",
           "extraPaths": [d, os.path.join(boards.ROOT, "lib"), built],
           "typeCheckingMode": "basic", "reportMissingModuleSource": "none"}
    with open(os.path.join(cfg_dir, "pyrightconfig.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    r = subprocess.run([sys.executable, "-m", "pyright", "--outputjson", "-p", cfg_dir],
                       capture_output=True, text=True)
    try:
        diags = json.loads(r.stdout)["generalDiagnostics"]
    except (ValueError, KeyError):
        raise SystemExit("pyright failed: %s" % (r.stderr or r.stdout)[-2000:])
    out = []
    for dg in diags:
        if dg.get("severity") != "error":
            continue
        if dg.get("rule") == "reportMissingImports" or API.search(dg["message"]):
            out.append((os.path.relpath(dg["file"], boards.ROOT),
                        dg["range"]["start"]["line"] + 1, dg["message"].split("\n")[0]))
    return out


def main(argv):
    names = argv or list(STUBS)
    bad = 0
    for name in names:
        if name not in STUBS:
            raise SystemExit("no stubs for %s; one of: %s" % (name, ", ".join(STUBS)))
        found = check(name)
        for f, line, msg in found:
            print("%s:%d: %s [%s]" % (f, line, msg, name))
        print("[stubcheck] %s: %s" % (name, "%d problem(s)" % len(found) if found else "ok"),
              flush=True)
        bad += len(found)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
