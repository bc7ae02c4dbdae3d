"""Check a config.json on the host with the node's own validator (lib/rbnode/config.py).

    python tools/checkconfig.py [config.json ...]

Prints OK or one line per problem (key, value, what is allowed); exit status 1 if any file
has a problem. The same code runs on the node at boot.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from rbnode import config  # noqa: E402


def main(argv):
    paths = argv or ["config.json"]
    bad = 0
    for p in paths:
        cfg, errs = config.load(p)
        if errs:
            bad += 1
            for e in errs:
                print(e)
        else:
            mods = cfg["modules"]
            print("%s: OK (%s, mode %s, period %d s, save every %d s)" % (
                p, "%d module(s): %s" % (len(mods), ", ".join(
                    "%s 0x%02x%s" % (m["id"], m["address"], "" if m["name"] == m["id"] else
                                     " (%s)" % m["name"]) for m in mods))
                if mods else "no modules listed: the node uses those it finds",
                cfg["mode"], cfg["period_s"], cfg["save_s"]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
