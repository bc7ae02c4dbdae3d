"""The firmware image checks that run here (no ESP32/RP2040 toolchain on this machine):
the manifests, mpy-cross for every port's architecture, the static check against the targets'
MicroPython stubs, and the littlefs image mounted and imported from on the unix port."""
import os
import subprocess
import sys

import pytest

from tools import boards, fsimage, stubcheck
from tools.host import hostenv
from tools.firmware import problems
from tools.manifest import Manifest

PY = sys.executable
MOUNT = """
import sys, vfs, os
class Dev:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
    def readblocks(self, n, buf, off=0):
        a = n * 4096 + off
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, n, buf, off=0):
        a = n * 4096 + (off or 0)
        self.data[a:a + len(buf)] = buf
    def ioctl(self, op, arg):
        return {4: len(self.data) // 4096, 5: 4096, 6: 0}.get(op)
vfs.mount(vfs.VfsLfs2(Dev(sys.argv[1]), progsize=int(sys.argv[2])), "/fs")
print("ROOT", sorted(os.listdir("/fs")))
print("LIB", sorted(os.listdir("/fs/lib")), sorted(os.listdir("/fs/lib/rbnode"))[:3])
with open("/fs/lib/rbnode/app.mpy", "rb") as f:
    print("MPY", f.read(2))
with open("/fs/config.json", "rb") as f:           # bytes: the example has a "ü"
    print("CONFIG", len(f.read()))
if sys.argv[3] == "import":
    sys.path.insert(0, "/fs/lib")
    import rbnode.app, mqtt_as, rbnode_build
    from rbnode.net import publisher
    print("FROM", rbnode.app.__file__, mqtt_as.__file__)
    print("VERSION", publisher.VERSION == rbnode_build.VERSION, rbnode_build.VERSION)
"""


def test_manifest_check_passes_and_compiles_for_every_port():
    r = subprocess.run([PY, "tools/manifest.py", "check"], cwd=hostenv.ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "manifest check: ok" in r.stdout
    for pkg in ("rbamp", "rbnode", "mqtt_as"):
        assert "frozen %s:" % pkg in r.stdout, r.stdout


def test_manifest_reader_reports_missing_paths(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "manifest.py").write_text(
        'include("$(PORT_DIR)/boards/manifest.py")\n'
        'package("pkg")\npackage("nopkg")\nmodule("none.py")\ninclude("other.py")\n'
        'freeze("pkg")\n')
    m = Manifest()
    m.include(str(tmp_path / "manifest.py"))
    assert m.files == [("pkg/a.py", str(tmp_path / "pkg" / "a.py"))]
    assert m.external == ["$(PORT_DIR)/boards/manifest.py"]
    text = "\n".join(m.errors)
    for what in ("package('nopkg'", "module('none.py'", "include('other.py')", "freeze('pkg')"):
        assert what in text, text


def test_every_board_manifest_freezes_the_application():
    for name in boards.BOARDS:
        path = boards.manifest(name)
        assert os.path.isfile(path), path
        with open(path) as f:
            assert 'include("../../manifest.py")' in f.read()


def test_the_driver_ships_its_own_manifest_without_the_cpython_adapter():
    from tools.manifest import Manifest
    m = Manifest()
    m.include(os.path.join(boards.ROOT, "lib", "rbamp", "manifest.py"))
    targets = sorted(t for t, _ in m.files)
    assert "rbamp/device.py" in targets and "rbamp/__init__.py" in targets, targets
    assert "rbamp/smbus.py" not in targets and "rbamp/manifest.py" not in targets, targets
    on_disk = sorted("rbamp/" + n for n in os.listdir(os.path.join(boards.ROOT, "lib", "rbamp"))
                     if n.endswith(".py") and n not in ("smbus.py", "manifest.py"))
    assert targets == on_disk        # a new module must be listed (the check says so too)
    assert m.metadata_kw == {} and m.errors == []   # the application's manifest has it


def test_stub_check_finds_target_api_misuse_and_passes_the_tree():
    probe = os.path.join(hostenv.ROOT, "build", "stubs", "probe_%d.py" % os.getpid())
    os.makedirs(os.path.dirname(probe), exist_ok=True)
    with open(probe, "w") as f:
        f.write("import machine\nimport esp32\nimport time\n"
                "machine.deepsleep_forever(1)\ntime.monotonic()\n"
                "machine.Pin(4).irq(None, machine.Pin.IRQ_FALLING, hardest=True)\n")
    try:
        found = stubcheck.check("RPI_PICO_W", [os.path.relpath(probe, hostenv.ROOT)])
    finally:
        os.remove(probe)
    text = "\n".join(m for _f, _l, m in found)
    assert [line for _f, line, _m in found] == [2, 4, 5, 6], text
    assert '"esp32" could not be resolved' in text and "deepsleep_forever" in text
    assert "hardest" in text
    r = subprocess.run([PY, "tools/stubcheck.py"], cwd=hostenv.ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": ok") == len(stubcheck.STUBS), r.stdout


def _mount(img, prog, mode):
    r = subprocess.run([hostenv.micropython(), "-X", "heapsize=16M", "-c", MOUNT + "\n",
                        img, str(prog), mode], capture_output=True, text=True, timeout=60,
                       env=hostenv.node_env())
    return r


@pytest.mark.parametrize("board", ["unix", "ESP32_GENERIC", "RPI_PICO_W"])
def test_fs_image_mounts_on_the_unix_port(tmp_path, board):
    """The littlefs image of the .mpy-compiled app and config.json mounts with vfs.VfsLfs2 at
    the board's prog size; built for the unix port (x64 .mpy) the app imports from it."""
    img = str(tmp_path / "fs.img")
    with open(img, "wb") as f:
        f.write(fsimage.image(board, os.path.join(hostenv.ROOT, "config.example.json")))
    b = boards.BOARDS[board]
    assert os.path.getsize(img) == b.get("fs_size", 0x200000)
    mode = "import" if board == "unix" else "list"
    r = _mount(img, b["prog"], mode)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "ROOT ['boot.py', 'config.json', 'lib', 'main.py']" in out, out
    assert "LIB ['mqtt_as', 'rbamp', 'rbboot.mpy', 'rbnode', 'rbnode_build.mpy']" in out, out
    assert "MPY b'M\\x06'" in out, out       # .mpy version 6: MicroPython 1.23 and later
    assert "CONFIG %d" % os.path.getsize(os.path.join(hostenv.ROOT, "config.example.json")) in out
    if mode == "import":
        assert "FROM /fs/lib/rbnode/app.mpy /fs/lib/mqtt_as/__init__.mpy" in out, out
        assert "VERSION True 0.1.0+g" in out, out


def test_fs_image_refuses_an_invalid_config(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"period_s": 5}')
    with pytest.raises(SystemExit) as e:
        fsimage.image("ESP32_GENERIC", str(bad))
    assert "period_s = 5" in str(e.value) and "not putting it on the image" in str(e.value)


def test_uf2_blocks_are_addressed_for_the_rp2040():
    data = bytes(range(256)) * 3
    u = fsimage.uf2(data, 0x10100000)
    assert len(u) == 3 * 512
    import struct
    for i in range(3):
        blk = u[i * 512:(i + 1) * 512]
        magic0, magic1, flags, addr, size, no, n, fam = struct.unpack("<8I", blk[:32])
        assert (magic0, magic1, flags, size, no, n, fam) == (
            0x0A324655, 0x9E5D5157, 0x2000, 256, i, 3, 0xE48BFF56)
        assert addr == 0x10100000 + 256 * i and blk[32:288] == data[i * 256:(i + 1) * 256]
        assert struct.unpack("<I", blk[508:])[0] == 0x0AB16F30


def test_firmware_build_says_what_is_missing(tmp_path):
    assert "MPY_DIR is not set" in problems("ESP32_GENERIC", None)[0]
    assert "not a MicroPython checkout" in problems("RPI_PICO_W", str(tmp_path))[0]
    (tmp_path / "ports" / "esp32").mkdir(parents=True)
    (tmp_path / "ports" / "esp32" / "Makefile").write_text("")
    p = "\n".join(problems("ESP32_GENERIC", str(tmp_path)))
    assert "lib/micropython-lib is empty" in p and "submodules BOARD=ESP32_GENERIC" in p
    assert "idf.py not found" in p and "export.sh" in p


def test_firmware_build_names_picotool_before_the_pico_sdk_goes_looking(tmp_path, monkeypatch):
    from tools.firmware import picotool_problems
    (tmp_path / "ports" / "rp2").mkdir(parents=True)
    (tmp_path / "ports" / "rp2" / "Makefile").write_text("")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))        # nothing installed: every tool named
    monkeypatch.delenv("picotool_DIR", raising=False)
    monkeypatch.setattr("tools.firmware.SYSTEM_PREFIXES", ())
    p = "\n".join(problems("RPI_PICO_W", str(tmp_path)))
    for needle in ("lib/pico-sdk is empty", "arm-none-eabi-gcc not found", "cmake not found",
                   "make not found", "gcc not found", "picotool (2.x) not found",
                   "picotool_DIR="):
        assert needle in p, needle
    assert "picotool_DIR=/nowhere holds no picotoolConfig.cmake" in \
        picotool_problems({"picotool_DIR": "/nowhere"})[0]
    inst = tmp_path / "prefix"
    (inst / "lib" / "cmake" / "picotool").mkdir(parents=True)
    (inst / "lib" / "cmake" / "picotool" / "picotoolConfig.cmake").write_text("")
    assert picotool_problems({"picotool_DIR": str(inst / "lib/cmake/picotool")}) == []
    (inst / "bin").mkdir()
    assert picotool_problems({"PATH": str(inst / "bin")}) == []   # found as cmake finds it


def test_unix32_build_needs_a_32_bit_gcc(tmp_path, monkeypatch):
    (tmp_path / "ports" / "unix").mkdir(parents=True)
    (tmp_path / "ports" / "unix" / "Makefile").write_text("")
    monkeypatch.setattr("tools.firmware.gcc_m32", lambda: False)
    p = "\n".join(problems("unix32", str(tmp_path)))
    assert "lib/mbedtls is empty" in p and "gcc-multilib" in p, p
    assert "gcc-multilib" not in "\n".join(problems("unix", str(tmp_path)))


def test_manifest_check_refuses_what_micropython_refuses(tmp_path):
    """A second metadata() in one include chain stops MicroPython's build; so do two frozen
    modules with one C name (mpy-tool names frozen_content.c's tables after the path)."""
    from tools.manifest import c_name, c_name_clashes
    (tmp_path / "inner.py").write_text('metadata(version="1")\n')
    (tmp_path / "outer.py").write_text('metadata(version="1")\ninclude("inner.py")\n')
    m = Manifest()
    m.include(str(tmp_path / "outer.py"))
    assert m.errors and "Duplicate call to metadata()" in m.errors[0], m.errors
    assert c_name("rbnode/net/link.py") == "rbnode_net_link"
    assert c_name_clashes(["rbnode/version.py", "rbnode_version.py", "a.py"]) and \
        not c_name_clashes(["rbnode/version.py", "rbnode_build.py"])


MPY_DIR = os.getenv("MPY_DIR")


@pytest.mark.skipif(not (MPY_DIR and os.path.isfile(os.path.join(MPY_DIR, "tools",
                                                                   "manifestfile.py"))),
                    reason="MPY_DIR (a MicroPython tree) not given")
def test_board_manifests_run_in_micropythons_own_manifestfile(monkeypatch):
    """Every board's manifest through MicroPython's tools/manifestfile.py itself (our
    reading of it in tools/manifest.py is a model: this is the real thing, as the build
    runs it), with no two frozen modules of one C name."""
    import importlib.util
    from tools import deps
    from tools.manifest import c_name_clashes
    if not os.path.isfile(os.path.join(MPY_DIR, "lib", "micropython-lib", "README.md")):
        pytest.skip("MPY_DIR has no lib/micropython-lib")
    spec = importlib.util.spec_from_file_location(
        "manifestfile", os.path.join(MPY_DIR, "tools", "manifestfile.py"))
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    monkeypatch.setenv("RBNODE_DEPS", deps.prepare())
    for name, b in boards.BOARDS.items():
        port = os.path.join(MPY_DIR, "ports", b["port"])
        board_dir = os.path.join(port, "variants", "standard") if b["port"] == "unix" else \
            os.path.join(port, "boards", name)
        m = mf.ManifestFile(mf.MODE_FREEZE, {
            "MPY_DIR": MPY_DIR, "MPY_LIB_DIR": os.path.join(MPY_DIR, "lib", "micropython-lib"),
            "PORT_DIR": port, "BOARD_DIR": board_dir})
        m.execute(boards.manifest(name))
        targets = [f.target_path for f in m.files()]
        assert "rbnode/app.py" in targets and "rbamp/device.py" in targets, name
        assert "mqtt_as/__init__.py" in targets and (
            "ssl/__init__.py" in targets or "ssl.py" in targets), (name, sorted(targets)[:20])
        assert not c_name_clashes(targets), (name, c_name_clashes(targets))
