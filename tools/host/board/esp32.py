# Host board `esp32`: the deep-sleep wake sources the firmware uses (the rest of the ESP32
# module is not modelled). See tools/host/board/README.md.
import _board

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True


def wake_on_ext0(pin, level=WAKEUP_ALL_LOW):
    """Wake from deep sleep when `pin` is at `level` (None: no ext0 wake)."""
    _board.ext0 = None if pin is None else (pin.id, 1 if level else 0)


# ---- flash partitions (esp32.Partition), for the firmware update over the air -------------
# A model of ports/esp32/esp32_partition.c on ESP-IDF's OTA data (esp_ota_ops.c), as
# MicroPython's ESP32_GENERIC-OTA build has them: app partitions ota_0 and ota_1 (0x180000
# bytes each) and otadata, rollback enabled (sdkconfig.base: BOOTLOADER_APP_ROLLBACK_ENABLE).
# The flash is files in the board directory, made by tools/host/hostrun.py for an OTA board
# (HostNode(ota=True)): flash/ota_0, flash/ota_1 (0xFF: erased), otadata.json (the two
# otadata records: seq, state) and `running` (the partition the host bootloader started).
# Without them the board has one factory app partition and no OTA data, as the plain
# ESP32_GENERIC build: get_next_update() raises OSError(ENOENT).
_NATIVE = 4096
_APP_SIZE = 0x180000
_OFFSETS = {"factory": 0x10000, "ota_0": 0x10000, "ota_1": 0x190000}
_SUBTYPES = {"factory": 0, "ota_0": 16, "ota_1": 17}
ESP_ERR_NOT_FOUND = -261
ESP_ERR_OTA_VALIDATE_FAILED = -5379
ESP_ERR_FLASH_OP_FAIL = -0x4002      # an erase or write the model refuses (never on a chip's
                                     # good flash: a write over bits not erased does not fail
                                     # there, it ANDs; the model says so loudly instead)


def _flash(label):
    return _board.board_dir() + "/flash/" + label


def _ota_board():
    try:
        import os
        os.stat(_flash("ota_0"))
        return True
    except OSError:
        return False


def _otadata():
    import json
    raw = _board.read_file("otadata.json")
    return json.loads(raw) if raw else [None, None]


def _running():
    v = _board.read_file("running")
    return v.decode() if v else ("ota_0" if _ota_board() else "factory")


def _boot_label():
    recs = [r for r in _otadata() if r and r["state"] not in ("INVALID", "ABORTED")]
    if not recs:
        return "ota_0"
    return "ota_%d" % ((max(r["seq"] for r in recs) - 1) % 2)


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=_NATIVE):
        if id == Partition.RUNNING:
            label = _running()
        elif id == Partition.BOOT:
            label = _boot_label() if _ota_board() else "factory"
        elif isinstance(id, str):
            label = id
            if label not in (("ota_0", "ota_1") if _ota_board() else ("factory",)):
                raise OSError(2)               # esp32_partition_new(NULL): ENOENT
        else:
            raise ValueError
        self.label = label
        self.block_size = block_size

    def __repr__(self):
        return "<Partition type=0, subtype=%d, address=%d, size=%d, label=%s, encrypted=0>" % (
            _SUBTYPES[self.label], _OFFSETS[self.label], _APP_SIZE, self.label)

    def info(self):
        return (0, _SUBTYPES[self.label], _OFFSETS[self.label], _APP_SIZE, self.label, False)

    def _file(self, mode):
        if self.label == "factory":
            raise OSError(ESP_ERR_NOT_FOUND)   # the model keeps no factory image's bytes
        return open(_flash(self.label), mode)

    def readblocks(self, block, buf, offset=0):
        at = block * self.block_size + offset
        if at + len(buf) > _APP_SIZE:
            raise OSError(-0x102)              # ESP_ERR_INVALID_ARG
        with self._file("rb") as f:
            f.seek(at)
            f.readinto(buf)

    def writeblocks(self, block, buf, offset=None):
        at = block * self.block_size
        n = len(buf)
        if at + (offset or 0) + n > _APP_SIZE:
            raise OSError(-0x102)
        with self._file("r+b") as f:
            if offset is None:                 # a simple write: erase, then write
                if at % _NATIVE or n % _NATIVE:
                    raise OSError(-0x102)      # esp_partition_erase_range: aligned only
                f.seek(at)
                f.write(b"\xff" * n)
            else:                              # an extended write: erased before, by ioctl 6
                at += offset
                f.seek(at)
                old = f.read(n)
                if any(b != 0xFF for b in old):
                    raise OSError(ESP_ERR_FLASH_OP_FAIL)
            f.seek(at)
            f.write(buf)

    def ioctl(self, cmd, arg):
        if cmd in (1, 2, 3):
            return 0
        if cmd == 4:
            return _APP_SIZE // self.block_size
        if cmd == 5:
            return self.block_size
        if cmd == 6:
            if self.block_size != _NATIVE:
                return -22
            with self._file("r+b") as f:
                f.seek(arg * _NATIVE)
                f.write(b"\xff" * _NATIVE)
            return 0
        return None

    def get_next_update(self):
        if not _ota_board():
            raise OSError(2)                   # no OTA partition: ENOENT
        return Partition("ota_1" if self.label == "ota_0" else "ota_0")

    def set_boot(self):
        """esp_ota_set_boot_partition: the image checked (esp_image_verify), then a new
        otadata record, state NEW (the bootloader makes it PENDING_VERIFY at its boot)."""
        if not _ota_board():
            raise OSError(ESP_ERR_NOT_FOUND)
        if _image_problem(self, _chip_id(Partition(Partition.RUNNING))):
            raise OSError(ESP_ERR_OTA_VALIDATE_FAILED)
        # esp_rewrite_ota_data: the active record is the valid one (not INVALID or ABORTED)
        # of highest seq; the new one goes into the other sector, with the least seq from
        # the active one's on that names this partition ((seq - 1) % 2)
        recs = _otadata()
        sub = int(self.label[-1])
        live = [i for i in (0, 1) if recs[i] and recs[i]["state"] not in ("INVALID", "ABORTED")]
        if live:
            active = max(live, key=lambda i: recs[i]["seq"])
            seq, k = recs[active]["seq"], 0
            while seq > (sub + 1) % 2 + k * 2:
                k += 1
            recs[1 - active] = {"seq": (sub + 1) % 2 + k * 2, "state": "NEW"}
        else:
            recs[0] = {"seq": sub + 1, "state": "NEW"}
        import json
        _board.write_file("otadata.json", json.dumps(recs).encode())

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        """esp_ota_mark_app_valid_cancel_rollback: the running app's record PENDING_VERIFY ->
        VALID (nothing else changes; ESP_OK)."""
        if not _ota_board():
            raise OSError(ESP_ERR_NOT_FOUND)
        recs = _otadata()
        run = int(_running()[-1])
        changed = False
        for r in recs:
            if r and (r["seq"] - 1) % 2 == run and r["state"] == "PENDING_VERIFY":
                r["state"] = "VALID"
                changed = True
        if changed:
            import json
            _board.write_file("otadata.json", json.dumps(recs).encode())

    @staticmethod
    def find(type=TYPE_APP, subtype=255, label=None, block_size=_NATIVE):
        if type != Partition.TYPE_APP:
            return []
        names = ("ota_0", "ota_1") if _ota_board() else ("factory",)
        return [Partition(n, block_size) for n in names if label in (None, n)]


def _chip_id(part):
    b = bytearray(24)
    try:
        part.readblocks(0, b)
    except OSError:
        return None
    return b[12] | b[13] << 8 if b[0] == 0xE9 else None


def _image_problem(part, chip):
    """esp_image_verify of the image at the start of part (tools/host/espimage.py's format):
    None when it is whole, else why not."""
    import hashlib
    with part._file("rb") as f:
        head = f.read(24)
        if len(head) < 24 or head[0] != 0xE9:
            return "no image"
        if chip is not None and (head[12] | head[13] << 8) != chip:
            return "another chip"
        h = hashlib.sha256(head)
        check = 0xEF
        pos = 24
        for _ in range(head[1]):
            sh = f.read(8)
            n = sh[4] | sh[5] << 8 | sh[6] << 16 | sh[7] << 24
            if pos + 8 + n > _APP_SIZE:
                return "a segment past the end"
            h.update(sh)
            left = n
            while left:
                data = f.read(min(4096, left))
                for b in data:
                    check ^= b
                h.update(data)
                left -= len(data)
            pos += 8 + n
        pad = f.read(16 - pos % 16)
        h.update(pad)
        if pad[-1] != check:
            return "checksum"
        if head[23] == 1 and f.read(32) != h.digest():
            return "hash"
    return None
