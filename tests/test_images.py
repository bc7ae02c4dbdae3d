"""Flash tools that cannot damage a board (issue 18, part 4): an image's kind and offset come
from its bytes, never its name; anything unknown, for another chip or too large is refused
before a port is touched. The ESP images are checked by esptool itself (image-info), and the
merged one is made by esptool merge-bin: the real tool agrees with what we read."""
import os
import random
import shutil
import struct
import subprocess
import sys

import pytest

from tools import boards, fsimage, images
from tools.devloop import flash
from tools.host import hostenv

EXAMPLE = os.path.join(hostenv.ROOT, "config.example.json")


def esp_image(chip_id, payload=b"\x00" * 16, load=0x3FFB0000):
    """A minimal ESP image (one DRAM segment) in esptool's format: header, extended header
    with the chip id, segment, checksum."""
    hdr = struct.pack("<BBBBI", 0xE9, 1, 2, 0x20, 0x40080000)
    ext = struct.pack("<B3sHBHH4sB", 0xEE, b"\0\0\0", chip_id, 0, 0, 0xFFFF, b"\0" * 4, 0)
    body = hdr + ext + struct.pack("<II", load, len(payload)) + payload
    cs = 0xEF
    for b in payload:
        cs ^= b
    return body + b"\0" * (15 - len(body) % 16) + bytes([cs])


def esptool(*args):
    return subprocess.run([sys.executable, "-m", "esptool"] + list(args), capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("images")
    out = {}
    for board, cid in (("ESP32_GENERIC", 0), ("ESP32_GENERIC_S3", 9)):
        fw = tmp_path / ("fw-%s.bin" % board)
        fw.write_bytes(esp_image(cid))
        r = esptool("--chip", boards.BOARDS[board]["chip"], "image-info", str(fw))
        assert r.returncode == 0 and "Checksum: 0xef (valid)" in r.stdout, r.stdout + r.stderr
        fs = tmp_path / ("fs-%s.img" % board)
        fs.write_bytes(fsimage.image(board, EXAMPLE))
        b = boards.BOARDS[board]
        merged = tmp_path / ("merged-%s.bin" % board)
        r = esptool("--chip", b["chip"], "merge-bin", "-o", str(merged),
                    "0x%x" % b["offset"], str(fw), "0x%x" % b["fs_offset"], str(fs))
        assert r.returncode == 0, r.stdout + r.stderr
        out[board] = {"firmware": str(fw), "fs": str(fs), "merged": str(merged)}
    rnd = tmp_path / "random.bin"
    rnd.write_bytes(random.Random(1).randbytes(1536 * 1024))
    out["random"] = str(rnd)
    uf2 = tmp_path / "pico.uf2"
    uf2.write_bytes(struct.pack("<IIIIIIII", 0x0A324655, 0x9E5D5157, 0x2000, 0x10000000, 256,
                                0, 1, 0xE48BFF56) + b"\0" * 476 + struct.pack("<I", 0x0AB16F30))
    out["uf2"] = str(uf2)
    return out


@pytest.mark.parametrize("board", ["ESP32_GENERIC", "ESP32_GENERIC_S3"])
def test_each_kind_goes_to_its_offset_whatever_its_name(tmp_path, files, board):
    b = boards.BOARDS[board]
    f = files[board]
    assert images.identify(f["firmware"], board) == ("firmware", b["offset"])
    assert images.identify(f["merged"], board) == ("merged", 0)
    assert images.identify(f["fs"], board) == ("fs", b["fs_offset"])   # was: 0x1000, over
    renamed = tmp_path / ("firmware-%s.bin" % board)                    # the bootloader
    shutil.copy(f["fs"], renamed)
    assert images.identify(str(renamed), board) == ("fs", b["fs_offset"])


def test_unknown_foreign_and_oversize_images_are_refused(tmp_path, files):
    for path, board, want in (
            (files["random"], "ESP32_GENERIC", "not an image this tool knows"),
            (files["ESP32_GENERIC_S3"]["firmware"], "ESP32_GENERIC", "for esp32s3, not"),
            (files["ESP32_GENERIC"]["firmware"], "ESP32_GENERIC_S3", "for esp32, not"),
            (files["uf2"], "ESP32_GENERIC", "UF2 file (RP2040)"),
            (files["ESP32_GENERIC"]["firmware"], "RPI_PICO_W", "not an image this tool")):
        with pytest.raises(SystemExit) as e:
            images.identify(path, board)
        assert want in str(e.value), (path, board, str(e.value))
    big = tmp_path / "big.bin"
    big.write_bytes(esp_image(0) + b"\xff" * 0x200000)
    with pytest.raises(SystemExit) as e:
        images.identify(str(big), "ESP32_GENERIC")
    assert "run into the filesystem" in str(e.value)
    assert images.identify(files["uf2"], "RPI_PICO_W") == ("uf2", None)


def test_flash_refuses_before_it_touches_a_port(files):
    """No port given: an unknown image is refused for what it is, not for the port."""
    with pytest.raises(SystemExit) as e:
        flash("ESP32_GENERIC", None, files["random"])
    assert "not an image this tool knows" in str(e.value)
    with pytest.raises(SystemExit) as e:
        flash("ESP32_GENERIC", None, files["ESP32_GENERIC"]["fs"])
    assert "PORT is not set" in str(e.value)            # a known image: on to the port


def test_merged_takes_only_a_stock_firmware(files):
    for bad, want in ((files["random"], "not an image this tool knows"),
                      (files["ESP32_GENERIC"]["fs"], "is a fs image, not the stock")):
        with pytest.raises(SystemExit) as e:
            fsimage.merged("ESP32_GENERIC", bad, EXAMPLE)
        assert want in str(e.value), str(e.value)
