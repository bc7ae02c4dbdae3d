"""For users who keep stock MicroPython: the application on a littlefs filesystem image.

    python tools/fsimage.py image BOARD [--config F]   # make fs-image BOARD=ESP32_GENERIC
    python tools/fsimage.py merged BOARD FIRMWARE      # make merged FIRMWARE=stock.bin

The image holds /lib/rbamp, /lib/rbnode and /lib/mqtt_as compiled to .mpy (mpy-cross, the
board's architecture), boot.py, main.py and config.json (checked first: an invalid one is
refused with the validator's messages; without one the node starts with defaults). Its size
and layout are the board's filesystem (tools/boards.py; FS_SIZE=bytes overrides it for other
flash sizes). ESP32: `merged` joins a stock MicroPython .bin and the image into one file that
esptool writes from flash address 0 (`make flash` knows a merged-*.bin). RP2040: the image comes as a .uf2 at the filesystem's
flash address; copy it to the RPI-RP2 drive after the stock MicroPython .uf2.
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import boards, deps, images  # noqa: E402
from tools.manifest import mpy_cross, read  # noqa: E402

UF2_FAMILY_RP2040 = 0xE48BFF56
RP2040_FLASH = 0x10000000


def _config_text(path, board=None):
    """The config.json to put on the image (None: none), validated as the node on board
    does (its pins included)."""
    if path is None:
        path = os.path.join(boards.ROOT, "config.json")
        if not os.path.exists(path):
            return None
    sys.path.insert(0, os.path.join(boards.ROOT, "lib"))
    from rbnode import config as _config
    _cfg, errs = _config.load(path, board)      # a board without pin rules (unix): none
    if errs:
        raise SystemExit("%s is not valid, not putting it on the image:\n  - %s"
                         % (path, "\n  - ".join(errs)))
    with open(path) as f:
        return f.read()


def files(board, config=None):
    """[(path on the device, bytes)]: the frozen modules as .mpy under /lib, boot/main."""
    arch = boards.get(board)["arch"]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for target, src in read(dep_dir=deps.prepare()).files:
            dst = os.path.join(tmp, "m.mpy")
            r = mpy_cross(src, target, arch, dst)
            if r.returncode:
                raise SystemExit("mpy-cross %s: %s" % (src, (r.stderr or r.stdout).strip()))
            with open(dst, "rb") as f:
                out.append(("lib/" + target[:-3] + ".mpy", f.read()))
    for name in ("boot.py", "main.py"):
        with open(os.path.join(boards.ROOT, name), "rb") as f:
            out.append((name, f.read()))
    text = _config_text(config, board)
    if text is not None:
        out.append(("config.json", text.encode()))
    return out


def image(board, config=None, size=None):
    """The littlefs image (bytes) for the board's filesystem."""
    from littlefs import LittleFS
    b = boards.get(board)
    size = size or int(os.environ.get("FS_SIZE") or 0) or b.get("fs_size") or 0x200000
    fs = LittleFS(block_size=boards.BLOCK, block_count=size // boards.BLOCK,
                  prog_size=b["prog"], read_size=32, lookahead_size=32, name_max=255,
                  disk_version=0x00020000)
    for path, data in files(board, config):
        d = os.path.dirname(path)
        if d:
            fs.makedirs(d, exist_ok=True)
        with fs.open(path, "wb") as f:
            f.write(data)
    return bytes(fs.context.buffer)


def uf2(data, addr, family=UF2_FAMILY_RP2040):
    """UF2 blocks of 256 payload bytes (the RP2040 bootrom's format)."""
    n = (len(data) + 255) // 256
    out = bytearray()
    for i in range(n):
        chunk = data[i * 256:(i + 1) * 256].ljust(256, b"\0")
        out += struct.pack("<IIIIIIII", 0x0A324655, 0x9E5D5157, 0x2000, addr + i * 256,
                           256, i, n, family)
        out += chunk.ljust(476, b"\0") + struct.pack("<I", 0x0AB16F30)
    return bytes(out)


def write_image(board, config=None):
    b = boards.get(board)
    data = image(board, config)
    out_dir = os.path.join(boards.ROOT, "build", board)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "fs-%s.img" % deps.version())
    with open(path, "wb") as f:
        f.write(data)
    print("[fs-image] %s: %d KiB littlefs" % (os.path.relpath(path, boards.ROOT), len(data) // 1024))
    if b["image"] == "uf2":
        path = path[:-4] + ".uf2"
        with open(path, "wb") as f:
            f.write(uf2(data, RP2040_FLASH + b["fs_offset"]))
        print("[fs-image] %s: copy it to the RPI-RP2 drive after the MicroPython .uf2"
              % os.path.relpath(path, boards.ROOT))
    return path


def merged(board, firmware, config=None):
    """A stock MicroPython .bin and the filesystem image as one esptool file."""
    b = boards.get(board)
    if b["image"] != "bin":
        raise SystemExit("merged is for ESP32 boards (RP2040: copy both .uf2 files)")
    if not firmware or not os.path.isfile(firmware):
        raise SystemExit("FIRMWARE=%s: give the stock MicroPython .bin for %s (from the "
                         "MicroPython download page, v1.29)" % (firmware or "", board))
    kind, _ = images.identify(firmware, board)
    if kind != "firmware":
        raise SystemExit("FIRMWARE=%s is a %s image, not the stock MicroPython .bin for %s"
                         % (firmware, kind, board))
    img = write_image(board, config)
    out = os.path.join(os.path.dirname(img), "merged-%s.bin" % deps.version())
    cmd = [sys.executable, "-m", "esptool", "--chip", b["chip"], "merge-bin", "-o", out,
           "0x%x" % b["offset"], firmware, "0x%x" % b["fs_offset"], img]
    subprocess.run(cmd, check=True)
    print("[merged] %s: one file from flash address 0 (make flash BOARD=%s IMAGE=%s)" % (
        os.path.relpath(out, boards.ROOT), board, os.path.relpath(out, boards.ROOT)))
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("image", "merged"))
    ap.add_argument("board")
    ap.add_argument("firmware", nargs="?")
    ap.add_argument("--config", help="config.json for the image (default: ./config.json if any)")
    a = ap.parse_args(argv)
    try:
        if a.what == "image":
            write_image(a.board, a.config)
        else:
            merged(a.board, a.firmware, a.config)
    except deps.DepsError as e:
        raise SystemExit(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
