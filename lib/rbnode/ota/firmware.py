"""The second update path, ESP32 only: the whole firmware (MicroPython with our app frozen)
into the other OTA app partition, and the bootloader starts it (issue 22).

    part = await install(body, key, head, total, progress)   # bundle.install calls it

A firmware bundle is an app bundle (bundle.py) with "kind": "firmware" in its header and one
file, firmware.bin: the app image of an OTA build (`make firmware BOARD=ESP32_GENERIC
VARIANT=OTA`, tools/ota.py firmware signs it). It is written as it arrives, 4 KB blocks into
the partition esp32.Partition(RUNNING).get_next_update() names, never into the running one;
block 0 (the image header) is erased first and written last, only once the file's SHA-256
and the bundle's signature are checked, so a partition whose download or check did not
finish holds no image a bootloader would start. Then the partition is read back and hashed
(what the flash holds, not what was sent). update.py switches: the ledger saved, ota/state
told (rbboot.switch_firmware), Partition.set_boot() (ESP-IDF verifies the image again), the
reset. The new firmware is on trial in the bootloader's sense: it must call
Partition.mark_app_valid_cancel_rollback() (rbboot.confirm, once healthy) before its next
reset, deep-sleep wakes included, or the bootloader starts the previous one again.

Evaluated and not used: glenn20's micropython-esp32-ota (MIT). Its writer (blockdev_writer)
does this block by block too, but its update path is blocking (requests, a time.sleep
countdown before the reset): the node would stop measuring and drop its broker connection
for the minute a 1.5 MB download takes; it has no signature; its status module probes the
partitions at import. What it does that matters is done here the same way: blocks through
esp32.Partition, the SHA-256 of what was written read back before set_boot.
"""
import binascii
import hashlib

from .bundle import BundleError, file_line, signature

BLOCK = 4096
NAME = "firmware.bin"
ESP_MAGIC = 0xE9


class FirmwareError(BundleError):
    pass


def target():
    """(running partition, the one to write): FirmwareError when this board cannot."""
    try:
        from esp32 import Partition  # pyright: ignore[reportMissingImports] (ESP32 only)
    except ImportError:
        raise FirmwareError("a firmware bundle is for ESP32 boards: this one updates its app "
                            "only (make ota-bundle)")
    run = Partition(Partition.RUNNING)
    try:
        nxt = run.get_next_update()
    except OSError:
        raise FirmwareError("this firmware's partition table has no second app partition: "
                            "flash an OTA build by cable once (make firmware "
                            "BOARD=ESP32_GENERIC VARIANT=OTA)")
    return run, nxt


def _chip(block):
    """The chip id of the ESP image header at the start of block, or None (no image)."""
    return block[12] | block[13] << 8 if block[0] == ESP_MAGIC else None


async def install(body, key, head, total, progress=None):
    """The firmware from body into the other app partition; its label once it is there
    whole and checked. body is past the header line, total its running SHA-256."""
    run, part = target()
    buf = bytearray(BLOCK)
    run.readblocks(0, buf)
    mine = _chip(buf)
    blocks = part.ioctl(4, None)
    size, digest, path = await file_line(body, total, 1 << 24)
    if path != NAME or head["files"] != 1 or size != head["bytes"]:
        raise FirmwareError("a firmware bundle holds one file, %s, of the header's size" % NAME)
    if not 24 <= size <= blocks * BLOCK:
        raise FirmwareError("the firmware is %d bytes, the app partition %s holds %d" % (
            size, part.info()[4], blocks * BLOCK))
    part.ioctl(6, 0)                 # no image in it from here on, whatever happens next
    first = bytearray(BLOCK)
    h = hashlib.sha256()
    done = 0
    block = 0
    while done < size:
        n = 0
        want = min(BLOCK, size - done)
        while n < want:
            data = await body.read(want - n)
            if not data:
                raise FirmwareError("the download ended inside the firmware (%d of %d bytes)"
                                    % (done + n, size))
            buf[n:n + len(data)] = data
            n += len(data)
        mv = memoryview(buf)[:n]
        h.update(mv)
        total.update(mv)
        if n < BLOCK:
            buf[n:] = b"\xff" * (BLOCK - n)       # the rest of the last block: erased flash
        if block == 0:
            chip = _chip(buf)
            if chip is None:
                raise FirmwareError("%s is not an ESP32 app image (it starts 0x%02x, not "
                                    "0xE9)" % (NAME, buf[0]))
            if mine is not None and chip != mine:
                raise FirmwareError("the firmware is for chip id %d, this board's is %d "
                                    "(ESP32 0, ESP32-S3 9)" % (chip, mine))
            first[:] = buf
        else:
            part.writeblocks(block, buf)
        block += 1
        done += n
        if progress is not None:
            progress(done, size)
    if binascii.hexlify(h.digest()).decode() != digest:
        raise FirmwareError("%s: its SHA-256 is not the one in its line" % NAME)
    await signature(body, key, total, "the firmware")
    part.writeblocks(0, first)
    if _readback(part, size, buf) != digest:
        part.ioctl(6, 0)
        raise FirmwareError("the firmware read back from %s is not what was written (flash "
                            "damaged?)" % part.info()[4])
    return part.info()[4]


def _readback(part, size, buf):
    h = hashlib.sha256()
    block = 0
    while size > 0:
        part.readblocks(block, buf)
        h.update(buf if size >= BLOCK else memoryview(buf)[:size])
        size -= BLOCK
        block += 1
    return binascii.hexlify(h.digest()).decode()
