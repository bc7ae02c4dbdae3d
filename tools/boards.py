"""The boards the firmware is built for, in one table (manifests, build, images, flashing).

port: MicroPython port directory; arch: mpy-cross -march of the port's frozen code;
image: what `make firmware` produces; offset: where esptool writes the .bin (ESP32: 0x1000,
ESP32-S3: 0); fs_offset/fs_size: the littlefs filesystem (ESP32: MicroPython makes the "vfs"
partition of everything after the first 2 MiB: 2 MiB on a 4 MiB module, 6 MiB on 8 MiB; RP2040
Pico W: the last 848 KiB of its 2 MiB flash); prog: littlefs prog size the port mounts with;
make: the port's make variables (default: BOARD=<name>).
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BOARDS = {
    "ESP32_GENERIC": {"port": "esp32", "chip": "esp32", "arch": "xtensawin", "image": "bin",
                      "offset": 0x1000, "fs_offset": 0x200000, "fs_size": 0x200000,
                      "prog": 32, "flash": "4MB"},
    "ESP32_GENERIC_S3": {"port": "esp32", "chip": "esp32s3", "arch": "xtensawin",
                         "image": "bin", "offset": 0x0, "fs_offset": 0x200000,
                         "fs_size": 0x600000, "prog": 32, "flash": "8MB"},
    "RPI_PICO_W": {"port": "rp2", "chip": "rp2040", "arch": "armv6m", "image": "uf2",
                   "fs_offset": 0x200000 - 868352, "fs_size": 868352, "prog": 256,
                   "flash": "2MB"},
    "unix": {"port": "unix", "chip": None, "arch": "x64", "image": "elf", "prog": 32},
    # the chips' memory model on the host: 32-bit words and pointers, float32, 31-bit small
    # ints, the app frozen (its bytecode outside the heap, as in flash). Not an ESP32's heap
    # layout (no WiFi/IDF beside it), but the same objects, the same sizes.
    "unix32": {"port": "unix", "chip": None, "arch": "x86", "image": "elf", "prog": 32,
               "make": ["VARIANT=standard", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0",
                        "CFLAGS_EXTRA=-m32 -DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_FLOAT",
                        "LDFLAGS_EXTRA=-m32"]},
}
BLOCK = 4096          # flash erase block: littlefs block size on every chip here


def get(name):
    if name not in BOARDS:
        raise SystemExit("unknown BOARD=%s; one of: %s" % (name, ", ".join(BOARDS)))
    return BOARDS[name]


def manifest(name):
    return os.path.join(ROOT, "firmware", "boards", name, "manifest.py")
