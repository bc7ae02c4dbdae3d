"""What an image file is, read from its bytes, and where it goes on the board's flash.

    kind, offset = images.identify(path, board)   # SystemExit naming the problem otherwise

Kinds:
  firmware  an ESP32 MicroPython .bin (bootloader image first: magic 0xE9, the chip id in its
            extended header) -> the board's offset (ESP32 0x1000, ESP32-S3 0)
  merged    the same from flash address 0 (esptool merge-bin: 0x1000 bytes of 0xFF on ESP32,
            then the bootloader) -> 0
  fs        a littlefs image (tools/fsimage.py: "littlefs" in its superblock) -> the board's
            filesystem offset
  uf2       an RP2040 UF2 file (its magic numbers, family RP2040) -> copied to the drive
Anything else is refused: a file written at the wrong offset can overwrite the bootloader.
The name of the file plays no part.
"""
import os
import struct

from tools import boards

ESP_MAGIC = 0xE9
CHIP_IDS = {"esp32": 0x0000, "esp32s2": 0x0002, "esp32c3": 0x0005, "esp32s3": 0x0009,
            "esp32c6": 0x000D}
UF2_MAGIC = (0x0A324655, 0x9E5D5157)
RP2040_FAMILY = 0xE48BFF56


def _chip_name(cid):
    for name, v in CHIP_IDS.items():
        if v == cid:
            return name
    return "chip id 0x%04x" % cid


def _esp_header(data, at, board, b, path):
    """The ESP image header at `at`, checked against the board's chip."""
    if len(data) < at + 24 or data[at] != ESP_MAGIC:
        return False
    cid = struct.unpack_from("<H", data, at + 12)[0]
    if cid != CHIP_IDS.get(b["chip"]):
        raise SystemExit("%s is an image for %s, not for BOARD=%s (%s)" % (
            path, _chip_name(cid), board, b["chip"]))
    return True


def _littlefs_at(path, pos):
    with open(path, "rb") as f:
        f.seek(pos)
        block = f.read(0x1040)
    return b"littlefs" in block[:64] or b"littlefs" in block[0x1000:0x1040]


def identify(path, board):
    b = boards.get(board)
    if not os.path.isfile(path):
        raise SystemExit("%s does not exist" % path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        data = f.read(0x2000)
    if len(data) >= 32 and struct.unpack_from("<II", data) == UF2_MAGIC:
        family = struct.unpack_from("<I", data, 28)[0]
        if b["image"] != "uf2":
            raise SystemExit("%s is a UF2 file (RP2040): BOARD=%s takes a .bin" % (path, board))
        if family != RP2040_FAMILY:
            raise SystemExit("%s is a UF2 file for another chip family (0x%08x)" % (path,
                                                                                   family))
        return "uf2", None
    if b"littlefs" in data[:64] or b"littlefs" in data[0x1000:0x1040]:
        if "fs_offset" not in b:
            raise SystemExit("BOARD=%s has no filesystem offset" % board)
        if size > b["fs_size"]:
            raise SystemExit("%s: %d bytes, larger than the filesystem of %s (%d)" % (
                path, size, board, b["fs_size"]))
        return "fs", b["fs_offset"]
    if b["image"] == "bin":
        limit = b["fs_offset"] - b["offset"]
        if _esp_header(data, 0, board, b, path):
            if size > limit and b["offset"] == 0 and _littlefs_at(path, b["fs_offset"]):
                return "merged", 0          # ESP32-S3: a merged file starts like firmware
            if size > limit:
                raise SystemExit("%s: %d bytes at 0x%x would run into the filesystem at 0x%x"
                                 % (path, size, b["offset"], b["fs_offset"]))
            return "firmware", b["offset"]
        if b["offset"] and data[:b["offset"]] == b"\xff" * b["offset"] and \
                _esp_header(data, b["offset"], board, b, path):
            return "merged", 0
    raise SystemExit("%s is not an image this tool knows for BOARD=%s (an ESP32 firmware "
                     ".bin, a merged .bin, a littlefs fs image or a UF2): refused, as written "
                     "at the wrong offset it could overwrite the bootloader" % (path, board))
