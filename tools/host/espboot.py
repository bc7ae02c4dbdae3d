"""The host board's flash as an ESP32 OTA build has it, and its second-stage bootloader
(CPython; the node's side is esp32.Partition in tools/host/board/esp32.py).

    flash = OtaFlash(board_dir)
    flash.create(lib_dir)       # "flashed by cable": ota_0 holds an image of lib_dir's app,
                                # ota_1 is erased, no OTA data (as after esptool erase+write)
    app_dir = flash.boot()      # every start (power-on, reset, deep-sleep wake): the
                                # bootloader's choice, unpacked; None: nothing bootable

The bootloader, as ESP-IDF's with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE (MicroPython's
sdkconfig.base): no usable OTA record -> ota_0. Else the record with the highest seq, not
INVALID or ABORTED; NEW becomes PENDING_VERIFY and boots; PENDING_VERIFY (the app did not
call mark_app_valid_cancel_rollback before this reset) becomes ABORTED and the other record's
partition boots. An image that does not verify (tools/host/espimage.py) is not started: the
next candidate is. A deep-sleep wake goes through it too, as on the chip.
"""
import hashlib
import json
import os

from tools.host import espimage

APP_SIZE = 0x180000
LABELS = ("ota_0", "ota_1")


def lib_files(lib_dir):
    """The .py files of an app tree (lib/): {relative path: bytes}."""
    out = {}
    for top, dirs, files in os.walk(lib_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in files:
            if f.endswith(".py"):
                p = os.path.join(top, f)
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, lib_dir)] = fh.read()
    return out


class OtaFlash:
    def __init__(self, board_dir):
        self.board = board_dir
        self.dir = os.path.join(board_dir, "flash")
        self.log = []                  # (label booted, why) of each boot

    def path(self, label):
        return os.path.join(self.dir, label)

    def create(self, lib_dir, chip_id=0):
        os.makedirs(self.dir, exist_ok=True)
        img = espimage.make(lib_files(lib_dir), chip_id)
        self.write(LABELS[0], img)
        self.write(LABELS[1], b"")
        for f in ("otadata.json", "running"):
            try:
                os.remove(os.path.join(self.board, f))
            except FileNotFoundError:
                pass

    def write(self, label, image):
        """A partition's whole content: image, then erased flash."""
        with open(self.path(label), "wb") as f:
            f.write(image + b"\xff" * (APP_SIZE - len(image)))

    def read(self, label):
        with open(self.path(label), "rb") as f:
            return f.read()

    def records(self):
        p = os.path.join(self.board, "otadata.json")
        if not os.path.exists(p):
            return [None, None]
        with open(p) as f:
            return json.load(f)

    def _save(self, recs):
        p = os.path.join(self.board, "otadata.json")
        with open(p + ".tmp", "w") as f:
            json.dump(recs, f)
        os.replace(p + ".tmp", p)

    def boot(self):
        recs = self.records()
        live = [r for r in recs if r and r["state"] not in ("INVALID", "ABORTED")]
        order = []
        if live:
            top = max(live, key=lambda r: r["seq"])
            if top["state"] == "PENDING_VERIFY":
                top["state"] = "ABORTED"       # not confirmed before this reset: back
                self._save(recs)
                why = "rollback: %s was not marked valid" % LABELS[(top["seq"] - 1) % 2]
                live = [r for r in live if r is not top]
            else:
                why = "otadata seq %d" % top["seq"]
                if top["state"] == "NEW":
                    top["state"] = "PENDING_VERIFY"
                    self._save(recs)
            order = [LABELS[(r["seq"] - 1) % 2] for r in sorted(live, key=lambda r: -r["seq"])]
        else:
            why = "no OTA data"
        order += [lb for lb in LABELS if lb not in order]
        for label in order:
            data = self.read(label)
            if espimage.verify(data, 0) is None:
                break
        else:
            self.log.append((None, "no bootable image"))
            return None
        with open(os.path.join(self.board, "running"), "w") as f:
            f.write(label)
        self.log.append((label, why))
        return self._unpacked(label, data)

    def _unpacked(self, label, data):
        files = espimage.unpack(data)
        digest = hashlib.sha256(data).hexdigest()[:16]
        d = os.path.join(self.board, "app", "%s-%s" % (label, digest))
        if not os.path.isdir(d):
            for path, body in files.items():
                p = os.path.join(d, path)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "wb") as f:
                    f.write(body)
        return d
