"""ESP32 app images (ESP-IDF's esp_image_format.h) for the host board's OTA partitions: made,
checked and unpacked on the host (CPython).

    data = make(files, chip_id=0)        # {path: bytes} -> an app image (a real format:
                                         # `esptool image-info` reads it)
    problem = verify(data, chip_id=0)    # None, or why a bootloader refuses it
    files = unpack(data)                 # the host app inside it: {path: bytes}

The layout: the 24-byte image header (magic 0xE9, segment count, SPI settings, entry point,
the extended header with chip_id at offset 12 and hash_appended at 23), the segments (load
address, length, data), padding to 16 bytes with the checksum last (0xEF XOR every segment
byte), and the SHA-256 of everything before it (hash_appended). The host app (the image's
"frozen" modules: rbboot.py, rbnode/, rbamp/, rbnode_build.py) is one DROM segment holding a
tar of them; the host bootloader (tools/host/hostrun.py) unpacks it and runs it, as a chip
runs what the image holds.
"""
import hashlib
import io
import struct
import tarfile

MAGIC = 0xE9
CHECKSUM_SEED = 0xEF
DROM = 0x3F400020
HOST_MARK = b"RBHOST-APP 1\n"


def make(files, chip_id=0):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            info.mtime = 0
            tar.addfile(info, io.BytesIO(files[path]))
    seg = HOST_MARK + buf.getvalue()
    seg += b"\0" * (-len(seg) % 4)
    head = struct.pack("<BBBBI", MAGIC, 1, 2, 0x20, DROM)
    head += struct.pack("<B3sHBHH4sB", 0xEE, b"\0\0\0", chip_id, 0, 0, 0xFFFF, b"\0" * 4, 1)
    body = head + struct.pack("<II", DROM, len(seg)) + seg
    check = CHECKSUM_SEED
    for b in seg:
        check ^= b
    body += b"\0" * (15 - len(body) % 16) + bytes([check])
    return body + hashlib.sha256(body).digest()


def _parse(data):
    """(chip_id, [(load, segment bytes)], end of the image incl. its hash), or a str."""
    if len(data) < 24 or data[0] != MAGIC:
        return "no image header (magic 0x%02x, not 0xE9)" % (data[0] if data else 0)
    count = data[1]
    chip_id = struct.unpack_from("<H", data, 12)[0]
    hashed = data[23] == 1
    pos, segs, check = 24, [], CHECKSUM_SEED
    for _ in range(count):
        if pos + 8 > len(data):
            return "a segment header past the end"
        load, n = struct.unpack_from("<II", data, pos)
        if pos + 8 + n > len(data) or n > 16 * 1024 * 1024:
            return "a segment of %d bytes past the end" % n
        seg = data[pos + 8:pos + 8 + n]
        for b in seg:
            check ^= b
        segs.append((load, seg))
        pos += 8 + n
    pos += 15 - pos % 16
    if pos >= len(data) or data[pos] != check:
        return "the checksum does not match"
    pos += 1
    if hashed:
        if data[pos:pos + 32] != hashlib.sha256(data[:pos]).digest():
            return "the appended SHA-256 does not match"
        pos += 32
    return chip_id, segs, pos


def verify(data, chip_id=None):
    p = _parse(data)
    if isinstance(p, str):
        return p
    if chip_id is not None and p[0] != chip_id:
        return "an image for chip id 0x%04x, this chip is 0x%04x" % (p[0], chip_id)
    return None


def unpack(data):
    p = _parse(data)
    if isinstance(p, str):
        raise ValueError(p)
    for _load, seg in p[1]:
        if seg.startswith(HOST_MARK):
            out = {}
            with tarfile.open(fileobj=io.BytesIO(seg[len(HOST_MARK):])) as tar:
                for m in tar.getmembers():
                    if m.isfile():
                        out[m.name] = tar.extractfile(m).read()
            return out
    raise ValueError("an ESP image without a host app (a real chip's firmware)")
