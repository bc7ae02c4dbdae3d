"""Which GPIOs the node may use, per board (checked on the node at boot and on the host).

    problems(cfg, "ESP32_GENERIC") -> ["i2c.sda = 7: ...", ...]
    this_board() -> "ESP32_GENERIC" / "ESP32_GENERIC_S3" / "RPI_PICO_W" / None (no rules)
    i2c_pins(cfg["i2c"], board) -> (sda, scl) the bus really uses (board defaults for null)

The facts are MicroPython's (ports/esp32 and ports/rp2 at v1.29) and the chips' datasheets:
  ESP32: GPIO 0-39 without 20, 24, 28-31; 6-11 wire the SPI flash (touching them stops the
    chip); 34-39 are input only (no I2C); 1/3 are the REPL's UART; 12 is the flash-voltage
    strap (a pull-up on it at reset selects 1.8 V flash and a 3.3 V module does not boot);
    deep-sleep wake (ext0) only on the RTC GPIOs. I2C0 defaults SCL 18 / SDA 19, I2C1 25 / 26.
  ESP32-S3: GPIO 0-21 and 26-48; 26-32 wire the flash; 19/20 are the USB REPL, 43/44 the
    UART REPL; wake on 0-21. (33-37 also carry octal PSRAM on "R8" modules: not refused,
    since the same board file runs on modules without it.) Both buses default to SCL 9 / SDA 8.
  Pico W: GPIO 0-22 and 26-28 (23-25 and 29 drive the WiFi chip); I2C n takes SDA on an even
    and SCL on an odd GPIO with (pin >> 1) & 1 == n; no wake from a pin (the timer only).
    Defaults: I2C0 SDA 4 / SCL 5, I2C1 SDA 6 / SCL 7.
"""
import sys


def _span(*ranges):
    out = set()
    for r in ranges:
        out.update(range(r[0], r[1] + 1) if isinstance(r, tuple) else (r,))
    return out


BOARDS = {
    "ESP32_GENERIC": {
        "chip": "ESP32",
        "gpio": _span((0, 19), (21, 23), (25, 27), (32, 39)),
        "taken": dict([(p, "wired to the SPI flash") for p in range(6, 12)] + [
            (1, "the REPL's UART (TX)"), (3, "the REPL's UART (RX)"),
            (12, "the flash-voltage strap: a pull-up on it at reset selects 1.8 V flash and "
                 "the board does not boot")]),
        "input_only": _span((34, 39)),
        "wake": _span(0, 2, 4, (12, 15), (25, 27), (32, 39)),
        "i2c": ((19, 18), (26, 25)),            # (sda, scl) defaults of I2C0, I2C1
    },
    "ESP32_GENERIC_S3": {
        "chip": "ESP32-S3",
        "gpio": _span((0, 21), (26, 48)),
        "taken": dict([(p, "wired to the SPI flash") for p in range(26, 33)] + [
            (19, "USB D- (the REPL's USB)"), (20, "USB D+ (the REPL's USB)"),
            (43, "the REPL's UART (TX)"), (44, "the REPL's UART (RX)")]),
        "input_only": set(),
        "wake": _span((0, 21)),
        "i2c": ((8, 9), (8, 9)),
    },
    "RPI_PICO_W": {
        "chip": "Pico W",
        "gpio": _span((0, 22), (26, 28)),
        "taken": {},
        "wifi": {23: "WL_ON", 24: "WL_D", 25: "WL_CS", 29: "WL_CLK"},   # the CYW43 chip
        "input_only": set(),
        "wake": set(),
        "i2c": ((4, 5), (6, 7)),
        "i2c_rule": True,
    },
}


MCUS = {"ESP32": "ESP32_GENERIC", "ESP32-UNICORE": "ESP32_GENERIC",
        "ESP32-D2WD": "ESP32_GENERIC", "ESP32-S3": "ESP32_GENERIC_S3",
        "ESP32S3": "ESP32_GENERIC_S3"}


def this_board(platform=None, machine=None):
    """The board this node runs on, from os.uname().machine ("<board> with <MCU>", e.g.
    "Generic ESP32S3 module with ESP32-S3"); None: no rules (the host, other chips)."""
    if machine is None:
        import os
        machine = os.uname().machine if hasattr(os, "uname") else ""
    platform = platform or sys.platform
    board, _, mcu = machine.rpartition(" with ")
    if platform == "esp32":
        return MCUS.get(mcu)
    if platform == "rp2" and mcu == "RP2040" and "Pico W" in board:
        return "RPI_PICO_W"
    return None


def i2c_pins(i2c, board):
    sda, scl = BOARDS[board]["i2c"][i2c["id"]]
    return (sda if i2c["sda"] is None else i2c["sda"], scl if i2c["scl"] is None else i2c["scl"])


def _exists(b, key, p, errs):
    if p in b["gpio"]:
        return True
    wifi = b.get("wifi", {})
    if p in wifi:
        errs.append("%s = %d: the %s's WiFi chip uses GPIO%d (%s)" % (key, p, b["chip"], p,
                                                                      wifi[p]))
    else:
        errs.append("%s = %d: the %s has no GPIO%d usable here (GPIO %s)" % (
            key, p, b["chip"], p, _ranges(b["gpio"])))
    return False


def _ranges(pins):
    out, run = [], []
    for p in sorted(pins):
        if run and p == run[-1] + 1:
            run.append(p)
            continue
        if run:
            out.append(_fmt(run))
        run = [p]
    if run:
        out.append(_fmt(run))
    return ", ".join(out)


def _fmt(run):
    return str(run[0]) if len(run) == 1 else "%d-%d" % (run[0], run[-1])


def _usable(b, key, p, errs, output):
    """p is a GPIO of the chip that nothing else holds; output: the line is driven low."""
    if not _exists(b, key, p, errs):
        return False
    why = b["taken"].get(p)
    if why:
        errs.append("%s = %d: GPIO%d is %s; choose another GPIO" % (key, p, p, why))
        return False
    if output and p in b["input_only"]:
        errs.append("%s = %d: GPIO%d is input only on the %s (I2C drives the line); choose "
                    "another GPIO" % (key, p, p, b["chip"]))
        return False
    return True


def problems(cfg, board):
    """The pin problems of a checked config on board (None: none checked)."""
    if board not in BOARDS:
        return []
    b = BOARDS[board]
    errs = []
    i2c = cfg["i2c"]
    sda, scl = i2c_pins(i2c, board)
    for key, p, given in (("i2c.sda", sda, i2c["sda"]), ("i2c.scl", scl, i2c["scl"])):
        if given is not None and _usable(b, key, p, errs, True) and b.get("i2c_rule"):
            even = key == "i2c.sda"
            if (p & 1) == even or ((p >> 1) & 1) != i2c["id"]:
                errs.append("%s = %d: I2C%d takes %s on GPIO %s" % (
                    key, p, i2c["id"], key[4:].upper(), ", ".join(
                        str(q) for q in sorted(b["gpio"])
                        if (q & 1) != even and ((q >> 1) & 1) == i2c["id"])))
    drdy = [("drdy_pin", cfg["drdy_pin"])] + [
        ("modules[%d].drdy_pin" % i, m["drdy_pin"]) for i, m in enumerate(cfg["modules"])]
    for key, p in drdy:
        if p is not None and _usable(b, key, p, errs, False) and p in (sda, scl) and \
                p not in (i2c["sda"], i2c["scl"]):
            errs.append("%s = %d: GPIO%d is the board's default I2C %s (i2c.%s is null)" % (
                key, p, p, "SDA" if p == sda else "SCL", "sda" if p == sda else "scl"))
    w = cfg["sleep"]["wake_pin"]
    if w is not None and _usable(b, "sleep.wake_pin", w, errs, False) and w not in b["wake"]:
        if b["wake"]:
            errs.append("sleep.wake_pin = %d: the %s wakes from deep sleep only on GPIO %s"
                        % (w, b["chip"], _ranges(b["wake"])))
        else:
            errs.append("sleep.wake_pin = %d: the %s wakes from deep sleep on its timer only "
                        "(set sleep.wake_pin and sleep.wake_w to null)" % (w, b["chip"]))
    if not errs and sda == scl:
        errs.append("i2c: SDA and SCL are both GPIO%d (the board's default for the other line): "
                    "give both" % sda)
    return errs
