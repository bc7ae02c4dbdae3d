"""Build the firmware image: MicroPython with lib/rbamp, lib/rbnode and mqtt_as frozen.

    python tools/firmware.py BOARD          # make firmware BOARD=ESP32_GENERIC MPY_DIR=...

BOARD: ESP32_GENERIC, ESP32_GENERIC_S3, RPI_PICO_W, unix (host build) or unix32 (host build
with the chips' memory model: 32-bit, float32; for the benchmarks and tests). MPY_DIR: a
MicroPython checkout (v1.29) with its submodules. The port's usual toolchain: ESP-IDF
(idf.py, after `. $IDF_PATH/export.sh`) for ESP32, the Arm GCC toolchain and cmake for
RP2040, gcc for unix. VARIANT=OTA (ESP32): MicroPython's OTA partition table (two app
partitions; the filesystem is then the last 960 KiB of a 4 MiB flash), for firmware updates
over the air; build/<BOARD>-OTA/ gets app-<version>.bin beside it (make ota-firmware signs
that). Output: build/<BOARD>/firmware-<version>.bin (ESP32: write it at the
board's offset with `make flash`), .uf2 (RP2040: copy it to the RPI-RP2 drive), or the unix
`micropython` binary.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import boards, deps  # noqa: E402

TOOLCHAIN = {
    "esp32": [("idf.py", "ESP-IDF: install the version named in $MPY_DIR/ports/esp32/README.md"
                         " and run `. $IDF_PATH/export.sh` in this shell")],
    "rp2": [("arm-none-eabi-gcc", "the Arm GCC toolchain (Debian: apt-get install "
                                  "gcc-arm-none-eabi libnewlib-arm-none-eabi)"),
            ("cmake", "cmake (apt-get install cmake)")],
    "unix": [("pkg-config", "pkg-config and libffi (apt-get install pkg-config libffi-dev)")],
}
SUBMODULES = {   # port: what its build takes from lib/ (path inside it, the submodule)
    "rp2": [("pico-sdk/pico_sdk_init.cmake", "lib/pico-sdk")],
    "unix": [("mbedtls/library/ssl_tls.c", "lib/mbedtls")],
}
HOST = [("make", "GNU make (apt-get install make)"),
        ("gcc", "a C compiler for mpy-cross (apt-get install build-essential)")]
OUTPUT = {"esp32": "firmware.bin", "rp2": "firmware.uf2", "unix": "micropython"}


def problems(board, mpy_dir):
    """What is missing to build, each with what to install (empty: ready)."""
    out = []
    b = boards.get(board)
    if not mpy_dir:
        return ["MPY_DIR is not set: clone MicroPython (git clone --branch v1.29.0 "
                "https://github.com/micropython/micropython) and pass MPY_DIR=<that checkout>"]
    port = os.path.join(mpy_dir, "ports", b["port"])
    if not os.path.isfile(os.path.join(port, "Makefile")):
        return ["MPY_DIR=%s is not a MicroPython checkout (no ports/%s/Makefile)"
                % (mpy_dir, b["port"])]
    if not os.path.isfile(os.path.join(mpy_dir, "lib", "micropython-lib", "README.md")):
        out.append("%s/lib/micropython-lib is empty: run `make -C %s submodules BOARD=%s`"
                   % (mpy_dir, port, board))
    for probe, sub in SUBMODULES.get(b["port"], ()):
        if not os.path.isfile(os.path.join(mpy_dir, "lib", probe)):
            out.append("%s/%s is empty: run `make -C %s submodules`" % (mpy_dir, sub, port))
    for exe, how in HOST + TOOLCHAIN[b["port"]]:
        if shutil.which(exe) is None:
            out.append("%s not found: install %s" % (exe, how))
    if any(a.startswith("CFLAGS_EXTRA=-m32") for a in b.get("make", ())) and \
            shutil.which("gcc") and not gcc_m32():
        out.append("gcc cannot build 32-bit programs (-m32): install gcc-multilib "
                   "(apt-get install gcc-multilib)")
    if b["port"] == "rp2":
        out += picotool_problems(os.environ)
    return out


def gcc_m32():
    """Whether gcc links a 32-bit program (gcc-multilib's libraries are there)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "t.c")
        with open(src, "w") as f:
            f.write("#include <math.h>\nint main(void) { return (int)sqrtf(1.0f) - 1; }\n")
        r = subprocess.run(["gcc", "-m32", src, "-lm", "-o", os.path.join(d, "t")],
                           capture_output=True)
        return r.returncode == 0


SYSTEM_PREFIXES = ("/usr/local", "/usr")
PICOTOOL_CONFIG = ("picotoolConfig.cmake", "picotool-config.cmake")


def picotool_problems(env):
    """pico-sdk 2.x needs picotool (2.x) to make the .uf2; when cmake cannot find it, the
    build tries to clone and build it from the network and fails deep inside cmake. Found the
    way cmake's find_package looks: picotool_DIR, else <prefix>/lib/cmake/picotool for each
    prefix of PATH and /usr/local, /usr."""
    given = env.get("picotool_DIR")
    if given:
        if any(os.path.isfile(os.path.join(given, n)) for n in PICOTOOL_CONFIG):
            return []
        return ["picotool_DIR=%s holds no picotoolConfig.cmake: point it at "
                "<picotool install prefix>/lib/cmake/picotool" % given]
    prefixes = [os.path.dirname(d.rstrip("/")) for d in env.get("PATH", "").split(os.pathsep)
                if d] + list(SYSTEM_PREFIXES)
    for pre in prefixes:
        for lib in ("lib", "lib64", "share"):
            if any(os.path.isfile(os.path.join(pre, lib, "cmake", "picotool", n))
                   for n in PICOTOOL_CONFIG):
                return []
    return ["picotool (2.x) not found: the Pico SDK needs it to make the .uf2 (it would try "
            "to download it during the build). Build it once from its source release "
            "(cmake -DPICO_SDK_PATH=$MPY_DIR/lib/pico-sdk -DCMAKE_INSTALL_PREFIX=$HOME/.local "
            "&& make install) and pass picotool_DIR=$HOME/.local/lib/cmake/picotool"]


def build(board, mpy_dir, jobs=None):
    b = boards.get(board)
    missing = problems(board, mpy_dir)
    if missing:
        raise SystemExit("cannot build %s:\n  - %s" % (board, "\n  - ".join(missing)))
    variant = os.environ.get("VARIANT") or ""
    if variant and b["port"] != "esp32":
        raise SystemExit("VARIANT=%s: variants are built for the ESP32 boards here" % variant)
    dep_dir = deps.prepare()
    version = deps.version()
    out_dir = os.path.join(boards.ROOT, "build", board + ("-" + variant if variant else ""))
    mp_build = os.path.join(out_dir, "mp")
    env = dict(os.environ, RBNODE_DEPS=dep_dir)
    jobs = ["-j%d" % (jobs or os.cpu_count() or 2)]
    print("[firmware] %s %s: mpy-cross" % (board, version), flush=True)
    subprocess.run(["make", "-C", os.path.join(mpy_dir, "mpy-cross")] + jobs, check=True)
    args = ["make", "-C", os.path.join(mpy_dir, "ports", b["port"]), "BUILD=" + mp_build,
            "FROZEN_MANIFEST=" + boards.manifest(board)] + jobs
    args += b.get("make") or (["VARIANT=standard"] if b["port"] == "unix" else ["BOARD=" + board])
    if variant:
        args.append("BOARD_VARIANT=" + variant)
    print("[firmware] %s" % " ".join(args), flush=True)
    subprocess.run(args, check=True, env=env)
    src = os.path.join(mp_build, OUTPUT[b["port"]])
    ext = {"bin": ".bin", "uf2": ".uf2"}.get(b["image"], "")
    dst = os.path.join(out_dir, "firmware-%s%s" % (version, ext))
    shutil.copy(src, dst)
    print("[firmware] %s (%d bytes)" % (os.path.relpath(dst, boards.ROOT), os.path.getsize(dst)))
    if variant == "OTA":         # the app image alone: what a firmware update writes
        app = os.path.join(out_dir, "app-%s.bin" % version)
        shutil.copy(os.path.join(mp_build, "micropython.bin"), app)
        print("[firmware] %s: sign it for an update over the air with make ota-firmware "
              "IMAGE=%s" % (os.path.relpath(app, boards.ROOT), os.path.relpath(app, boards.ROOT)))
    if b["image"] == "bin":
        print("[firmware] flash it: make flash BOARD=%s PORT=/dev/ttyUSB0 (esptool writes it "
              "at 0x%x)" % (board, b["offset"]))
    return dst


def newest(board):
    """The newest built image of a board, or None."""
    d = os.path.join(boards.ROOT, "build", board)
    imgs = [os.path.join(d, f) for f in os.listdir(d) if f.startswith("firmware-")] \
        if os.path.isdir(d) else []
    return max(imgs, key=os.path.getmtime) if imgs else None


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        build(argv[0], os.environ.get("MPY_DIR"))
    except deps.DepsError as e:
        raise SystemExit("cannot build: %s" % e)
    except subprocess.CalledProcessError as e:
        raise SystemExit("the MicroPython build failed (exit %d): see the output above"
                         % e.returncode)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
