"""Check a config.json on the host with the node's own validator (lib/rbnode/config.py).

    python tools/checkconfig.py [--board BOARD] [config.json ...]

Prints OK or one line per problem (key, value, what is allowed); exit status 1 if any file
has a problem. The same code runs on the node at boot. With --board (ESP32_GENERIC,
ESP32_GENERIC_S3, RPI_PICO_W: `make config-check BOARD=...`) the GPIOs are checked against
that board as the node checks them against its own, and the I2C pins in use are named.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from rbnode import config, pins  # noqa: E402


def main(argv):
    board = None
    if argv[:1] == ["--board"]:
        if len(argv) < 2 or argv[1] not in pins.BOARDS:
            print("--board: one of %s" % ", ".join(sorted(pins.BOARDS)))
            return 2
        board, argv = argv[1], argv[2:]
    paths = argv or ["config.json"]
    bad = 0
    for p in paths:
        cfg, errs = config.load(p, board)
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
            if board:
                sda, scl = pins.i2c_pins(cfg["i2c"], board)
                print("%s: %s: I2C%d on SDA GPIO%d, SCL GPIO%d" % (
                    p, board, cfg["i2c"]["id"], sda, scl))
            else:
                print("%s: GPIOs not checked against a board (give --board, or BOARD= to "
                      "make config-check)" % p)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
