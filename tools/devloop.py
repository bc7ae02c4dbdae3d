"""Put the firmware on a board and work with it: flash, deploy, dev.

    python tools/devloop.py flash BOARD PORT [IMAGE]   # make flash BOARD=... PORT=/dev/ttyUSB0
    python tools/devloop.py deploy PORT                 # make deploy PORT=...
    python tools/devloop.py dev PORT                    # make dev PORT=...

flash: ESP32: esptool writes the image (default: the newest build/<BOARD>/firmware-*.bin, or
IMAGE=, e.g. a merged .bin) at the board's offset; ERASE=1 erases the flash first (a new board,
or a filesystem to start afresh: it also erases config.json and the energy ledger). RP2040:
copies the .uf2 to the RPI-RP2 drive (hold BOOTSEL while plugging in), or loads it with
picotool when installed.
deploy: checks config.json, then copies boot.py, main.py and config.json with mpremote and
resets the board.
dev: mounts this working tree on the board (mpremote's mount) and runs main.py from it, with
lib/ ahead of the frozen copies on sys.path, so an edit runs without a new image: Ctrl-C
stops the node (it saves its ledger), run `make dev` again after an edit. Files the node
writes (energy ledger, crash.json) land in the working tree.
"""
import glob
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import boards, images  # noqa: E402

NO_PERMISSION = ("no permission on {port}: add yourself to the dialout group "
                 "(sudo usermod -aG dialout $USER) and log in again")
HINTS = (("Wrong --chip argument", "the board on {port} is not a {chip}: choose its BOARD= "
                                   "(ESP32_GENERIC, ESP32_GENERIC_S3)"),
         ("Failed to connect", "no answer from the chip on {port}: hold BOOT while it resets, "
                               "or check the cable (a charge-only cable has no data lines)"),
         ("Permission denied", NO_PERMISSION),
         ("could not open port", "cannot open {port}: is another program (a serial monitor, "
                                 "mpremote) using it?"),
         ("failed to access", "cannot open {port}: is another program (a serial monitor) "
                              "using it?"))


class DeviceError(SystemExit):
    pass


def check_port(port):
    if not port:
        raise DeviceError("PORT is not set: e.g. PORT=/dev/ttyUSB0 (serial ports here: %s)"
                          % (", ".join(serial_ports()) or "none"))
    if not os.path.exists(port):
        raise DeviceError("serial port %s not found: is the board plugged in? (serial ports "
                          "here: %s)" % (port, ", ".join(serial_ports()) or "none"))
    if not os.access(port, os.R_OK | os.W_OK):
        raise DeviceError(NO_PERMISSION.format(port=port))


def serial_ports():
    return sorted(glob.glob("/dev/ttyUSB*") + glob.glob("/dev/ttyACM*") +
                  glob.glob("/dev/cu.usb*"))


def run(cmd, port, chip=None):
    """Run a tool with its progress on the terminal; its known failures as one clear line."""
    print("[device] " + " ".join(cmd), flush=True)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in p.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        seen.append(line)
    if p.wait():
        hint = _hint("".join(seen), port, chip)
        if hint:
            raise DeviceError(hint)
        raise DeviceError("%s failed (exit %d): see above" % (cmd[0], p.returncode))


def image_for(board, image=None):
    if image:
        if not os.path.isfile(image):
            raise DeviceError("IMAGE=%s does not exist" % image)
        return image
    from tools.firmware import newest
    img = newest(board)
    if img is None:
        raise DeviceError("no image in build/%s: run `make firmware BOARD=%s MPY_DIR=...` "
                          "or give IMAGE=" % (board, board))
    return img


def flash(board, port, image=None, erase=False):
    b = boards.get(board)
    img = image_for(board, image)
    kind, at = images.identify(img, board)     # from the bytes, not the name; else refused
    if kind == "uf2":
        return _copy_uf2(img)
    check_port(port)
    esptool = [sys.executable, "-m", "esptool", "--chip", b["chip"], "--port", port]
    if erase:
        run(esptool + ["erase-flash"], port, b["chip"])
    run(esptool + ["--baud", "460800", "write-flash", "0x%x" % at, img], port, b["chip"])
    print("[device] %s (%s) written at 0x%x; the board restarts" % (
        os.path.basename(img), kind, at))


def _copy_uf2(img):
    drives = [d for d in (os.environ.get("UF2_DIR"),) if d] + \
        glob.glob("/media/*/RPI-RP2") + glob.glob("/run/media/*/RPI-RP2") + \
        glob.glob("/Volumes/RPI-RP2")
    if drives:
        shutil.copy(img, drives[0])
        print("[device] %s copied to %s; the Pico restarts" % (os.path.basename(img), drives[0]))
    elif shutil.which("picotool"):
        run(["picotool", "load", "-x", img], "USB")
    else:
        raise DeviceError("no RPI-RP2 drive: hold BOOTSEL while plugging the Pico W in (or set "
                          "UF2_DIR= to where it is mounted, or install picotool)")


def mpremote(port, *args):
    return [sys.executable, "-m", "mpremote", "connect", port] + list(args)


def deploy(port):
    check_port(port)
    cfg = os.path.join(boards.ROOT, "config.json")
    if not os.path.exists(cfg):
        raise DeviceError("config.json not found: copy config.example.json to config.json and "
                          "edit it (CONFIG.md)")
    r = subprocess.run([sys.executable, os.path.join(boards.ROOT, "tools", "checkconfig.py"),
                        cfg])
    if r.returncode:
        raise DeviceError("config.json is not valid (above): not deploying it")
    args = []
    for f in ("boot.py", "main.py", "config.json"):   # each to its own name: no "cp a b :"
        args += ["cp", os.path.join(boards.ROOT, f), ":" + f, "+"]
    run(mpremote(port, *args, "reset"), port)
    print("[device] boot.py, main.py, config.json on the board; it restarts")


DEV_MAIN = "import sys; sys.path.insert(0, '/remote/lib'); import main"


def dev(port):
    """mpremote's transport, driven here rather than by `mpremote mount . exec ...`: that
    exits on Ctrl-C and leaves the node running on the board with its filesystem gone (its
    next file access hangs, and the next connect lands in the middle of it). Here Ctrl-C is
    sent to the board while the mount still answers: the node stops as on Ctrl-C at its
    console (ledger saved), then the mount is undone and the board is left at its REPL."""
    check_port(port)
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport
    os.chdir(boards.ROOT)
    out = sys.stdout.buffer

    def show(data):
        out.write(data)
        out.flush()

    def follow(t, timeout=None):
        _, err = t.follow(timeout=timeout, data_consumer=show)
        if err:
            show(err)
    try:
        t = SerialTransport(port, baudrate=115200)
    except TransportError as e:
        raise DeviceError(_hint(str(e), port) or "cannot open %s: %s" % (port, e))
    try:
        t.enter_raw_repl(soft_reset=True)      # the board's own main.py stops: a fresh VM
        t.mount_local(".")
        print("[device] %s is mounted at /remote on the board; main.py runs from it, lib/ "
              "ahead of the frozen copies (Ctrl-C stops the node)" % boards.ROOT, flush=True)
        t.exec_raw_no_follow(DEV_MAIN)
        try:
            follow(t)
        except KeyboardInterrupt:
            print("\n[device] Ctrl-C: stopping the node on the board", flush=True)
            t.serial.write(b"\x03")
            follow(t, timeout=60)
        t.umount_local()
        t.exit_raw_repl()
        print("[device] the node stopped; the board is at its REPL (a reset runs its own "
              "main.py again)")
    except TransportError as e:
        raise DeviceError("lost the board on %s: %s" % (port, e))
    finally:
        t.close()


def _hint(text, port, chip=None):
    for needle, hint in HINTS:
        if needle in text:
            return hint.format(port=port, chip=chip)
    return None


def main(argv):
    if len(argv) < 2 or argv[0] not in ("flash", "deploy", "dev"):
        print(__doc__)
        return 2
    if argv[0] == "flash":
        flash(argv[1], argv[2] if len(argv) > 2 else None, argv[3] if len(argv) > 3 else None,
              erase=os.environ.get("ERASE") == "1")
    elif argv[0] == "deploy":
        deploy(argv[1])
    else:
        dev(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
