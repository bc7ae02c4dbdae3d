# Board state of the host board: reset cause, RTC (clock and memory), sleep, reset, WDT.
# It lives in HOSTBOARD_DIR (default ./.hostboard) so it survives the process restarts
# that stand for deep sleep and resets; tools/host/hostrun.py reads `next_boot` and restarts.
import os
import sys
import time
import _thread

import _sim

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
EXT0_WAKE = PIN_WAKE = 2      # machine.wake_reason() values as on the ESP32
EXT1_WAKE = 3
TIMER_WAKE = 4
EXIT_DEEPSLEEP = 64
EXIT_RESET = 65
RTC_MEMORY_SIZE = 2048  # ESP32 RTC slow memory available to RTC.memory()


def board_dir():
    d = os.getenv("HOSTBOARD_DIR") or ".hostboard"
    try:
        os.mkdir(d)
    except OSError:
        pass
    return d


def _path(name):
    return board_dir() + "/" + name


def read_file(name, default=None):
    try:
        with open(_path(name), "rb") as f:
            return f.read()
    except OSError:
        return default


def write_file(name, data):
    tmp = _path(name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, _path(name))


def port():
    return os.getenv("HOSTBOARD_PORT") or "esp32"


def reset_cause():
    """The runner's cause of this start; an rp2 board knows power-on and watchdog only (its
    deep sleep, machine.reset() and a bite are all watchdog reboots)."""
    v = read_file("reset_cause")
    v = int(v) if v else PWRON_RESET
    if port() == "rp2" and v != PWRON_RESET:
        return WDT_RESET
    return v


_backup = None           # rp2: the watchdog scratch words, kept across resets (not power-on)


def mem_backup(region=0):
    """rp2's machine.mem_backup(): region 0 scratch[0..3], region 1 scratch[5..7], 32-bit
    words, kept across deep sleep, resets and watchdog bites, lost at power-on (the runner
    removes the file). Other ports: not modelled (ESP32's is its RTC memory)."""
    global _backup
    if port() != "rp2":
        raise AttributeError("mem_backup (modelled for HOSTBOARD_PORT=rp2 only)")
    if _backup is None:
        import array
        import struct
        raw = read_file("mem_backup") or b""
        words = list(struct.unpack("<7I", raw)) if len(raw) == 28 else [0] * 7
        _backup = (array.array("I", words[:4]), array.array("I", words[4:]))
    if region == -1:
        return tuple(memoryview(a) for a in _backup)
    if region not in (0, 1):
        raise ValueError("invalid region")
    return memoryview(_backup[region])


def _keep_backup():
    if _backup is not None:
        import struct
        write_file("mem_backup", struct.pack("<7I", *(list(_backup[0]) + list(_backup[1]))))


def wake_reason():
    """What ended the last deep sleep (the runner writes it): EXT0_WAKE, TIMER_WAKE, or 0."""
    v = read_file("wake_reason")
    return int(v) if v else 0


ext0 = None   # (pin number, level) from esp32.wake_on_ext0(); this boot only, as on the chip


def unique_id():
    uid = os.getenv("HOSTBOARD_UID")
    return bytes.fromhex(uid) if uid else b"\x24\x0a\xc4\x00\xbe\xef"


def _leave(kind, code):
    _keep_backup()
    write_file("next_boot", kind.encode())
    try:
        sys.stdout.flush()
    except AttributeError:
        pass
    if os.getenv("HOSTBOARD_SERIAL"):
        # tools/host/serialboard.py runs the REPL (micropython -i), where SystemExit only ends
        # the script: end the process at once, as a reset ends everything on a chip
        os.system("kill -9 $PPID")
    sys.exit(code)


def deepsleep(ms=0):
    """The process ends; the runner fast-forwards the simulator by ms and starts the node again
    with reset_cause() == DEEPSLEEP_RESET. RTC memory is kept. With an ext0 wake pin the
    runner ends the sleep early when the simulator holds that line at the level."""
    _leave("deepsleep %d" % ms + (" ext0 %d %d" % ext0 if ext0 else ""), EXIT_DEEPSLEEP)


def lightsleep(ms=0):
    time.sleep_ms(ms)


def reset():
    _leave("reset", EXIT_RESET)


def soft_reset():
    _leave("reset", EXIT_RESET)


def world_epoch_us():
    """Microseconds since 1970 on the simulator's world clock (follows fast-forwards), an
    integer: float seconds since 1970 have a 128 s step on a float32 build."""
    if _sim.address():
        return _sim.ctl("time")["epoch_us"]
    return time.time_ns() // 1000


class RTC:
    """ESP32-like RTC: the clock follows the world (survives deep sleep); memory() is kept
    across deep sleep and resets and lost on power-on. HOSTBOARD_PORT=rp2 has no memory()."""

    def __init__(self, id=0):
        if port() == "rp2":
            self.memory = None

    def _offset_us(self):
        v = read_file("rtc_offset")
        try:
            return int(v) if v else 0
        except ValueError:
            return 0

    def datetime(self, dt=None):
        if dt is None:
            t = world_epoch_us() + self._offset_us()
            tm = time.gmtime(t // 1000000)
            return (tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], t % 1000000)
        y, mo, d, _wd, h, mi, s = dt[:7]
        want = time.mktime((y, mo, d, h, mi, s, 0, 0)) * 1000000 + (dt[7] if len(dt) > 7 else 0)
        write_file("rtc_offset", str(want - world_epoch_us()).encode())

    def init(self, dt):
        self.datetime(dt)

    def memory(self, data=None):
        if data is None:
            return read_file("rtc_memory", b"")
        if len(data) > RTC_MEMORY_SIZE:
            raise ValueError("buffer too long")
        write_file("rtc_memory", bytes(data))


def _pid():
    with open("/proc/self/stat") as f:
        return int(f.read().split()[0])


class WDT:
    """Hardware watchdog: not fed within `timeout` ms -> the process is killed (even when
    hung in a blocking call) and the runner restarts it with WDT_RESET."""

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self._due = time.ticks_add(time.ticks_ms(), timeout)
        _thread.start_new_thread(self._watch, ())

    def feed(self):
        self._due = time.ticks_add(time.ticks_ms(), self.timeout)

    def _watch(self):
        while time.ticks_diff(self._due, time.ticks_ms()) > 0:
            time.sleep_ms(20)
        _keep_backup()
        write_file("next_boot", b"wdt")
        print("WDT: not fed for %d ms, resetting" % self.timeout)
        os.system("kill -9 %d" % _pid())
