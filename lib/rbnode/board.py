"""The board: every hardware object of the node is made here and handed to the others.

ESP32, RP2040 (Pico W) and the unix-port host board (tools/host/board) differ in:
  - RTC memory: ESP32 keeps 2 KB across deep sleep and resets; RP2040 has none (None here).
  - hard IRQs: both chips run `hard=True` handlers in interrupt context (no allocation);
    the host board runs them under heap_lock to catch the same mistakes.
  - watchdog range: RP2040 at most 8388 ms; ESP32 any.
  - reset causes: RP2040 knows power-on and watchdog only, and its machine.deepsleep is a
    lightsleep then a watchdog reboot, as machine.reset() is: the node marks its own deep
    sleeps and resets in a watchdog scratch word (machine.mem_backup(), which survives those
    reboots, not a power-on) just before, so a wake is told from a bite (WAKE_MARKS).
  - ticks wrap at 2**30 ms on every port: always ticks_diff().
"""
import sys
import time

import machine

PORT = sys.platform          # "esp32", "rp2", "linux" (host board)
WDT_MAX_MS = {"rp2": 8388}
RESET_CAUSES = {getattr(machine, k, -1): k[:-6].lower() for k in (
    "PWRON_RESET", "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET")}
SLEPT, RESET = 0x534C5031, 0x52535431     # "SLP1", "RST1": mem_backup()[0] (RP2040)
WAKE_MARKS = {SLEPT: "deepsleep", RESET: "soft"}


def _marks():
    """Where the chip cannot tell a deep-sleep wake (no DEEPSLEEP_RESET: RP2040), the words
    of machine.mem_backup() (its watchdog scratch registers); else None (ESP32 says; its
    mem_backup is RTC memory, the sleep state's)."""
    if hasattr(machine, "DEEPSLEEP_RESET"):
        return None
    fn = getattr(machine, "mem_backup", None)
    try:
        m = fn() if fn is not None else None
    except (OSError, ValueError):
        return None
    return m if m is not None and len(m) >= 1 and getattr(m, "itemsize", 4) == 4 else None


class Board:
    def __init__(self, i2c_cfg=None):
        self._i2c_cfg = i2c_cfg or {}
        self._i2c = None
        self._pins = {}
        self._wdt = None
        self._cause = None
        self.rtc = machine.RTC() if hasattr(machine, "RTC") else None

    # ---- buses and pins ------------------------------------------------------------------
    def i2c(self):
        """The I2C bus of config `i2c` (board default pins when sda/scl are null)."""
        if self._i2c is None:
            c = self._i2c_cfg
            kw = {"freq": c.get("freq", 50000)}
            if c.get("scl") is not None:
                kw["scl"] = machine.Pin(c["scl"])
            if c.get("sda") is not None:
                kw["sda"] = machine.Pin(c["sda"])
            self._i2c = machine.I2C(c.get("id", 0), **kw)
        return self._i2c

    def drdy_pin(self, n, handler):
        """Input with pull-up and a falling-edge IRQ calling handler(pin) in IRQ context."""
        p = self._pins.get(n)
        if p is None:
            p = self._pins[n] = machine.Pin(n, machine.Pin.IN, machine.Pin.PULL_UP)
        p.irq(handler, machine.Pin.IRQ_FALLING, hard=True)
        return p

    @staticmethod
    def rssi():
        """The WiFi signal in dBm, or None (no WiFi, not associated)."""
        try:
            import network
            return network.WLAN(network.STA_IF).status("rssi")
        except (ImportError, OSError, ValueError, TypeError):
            return None

    # ---- watchdog --------------------------------------------------------------------------
    def watchdog(self, seconds):
        """Start the hardware watchdog (cannot be stopped once started). 0: none."""
        if not seconds or not hasattr(machine, "WDT"):
            return None
        ms = min(seconds * 1000, WDT_MAX_MS.get(PORT, seconds * 1000))
        self._wdt = machine.WDT(timeout=ms)
        return self._wdt

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    # ---- reset, sleep, identity ----------------------------------------------------------
    def reset_cause(self):
        """"pwron", "wdt", "deepsleep", "soft", "hard" or "unknown": read once per boot (on
        RP2040 the mark of a deep sleep or a reset of the node's own is then cleared)."""
        if self._cause is None:
            c = RESET_CAUSES.get(machine.reset_cause(), "unknown")
            m = _marks()
            if m is not None:
                if c == "wdt":
                    c = WAKE_MARKS.get(m[0], c)
                m[0] = 0
            self._cause = c
        return self._cause

    @staticmethod
    def _mark(what):
        m = _marks()
        if m is not None:
            m[0] = what

    def reset(self):
        self._mark(RESET)
        machine.reset()

    def deepsleep(self, ms, wake_pin=None):
        """Deep sleep for ms; with wake_pin, also wake when that line is held LOW (ESP32
        ext0: an RTC-capable GPIO). Boards without it (RP2040) wake on the timer only."""
        if wake_pin is not None:
            try:
                import esp32  # pyright: ignore[reportMissingImports] (ESP32 only)
                esp32.wake_on_ext0(machine.Pin(wake_pin, machine.Pin.IN), esp32.WAKEUP_ALL_LOW)
            except (ImportError, ValueError) as e:   # no esp32 module; not an RTC GPIO
                print("deep sleep: no wake on GPIO %d (%s): the timer only" % (wake_pin, e))
        self._mark(SLEPT)
        machine.deepsleep(ms)

    def wake_reason(self):
        """After a deep-sleep wake: "pin" (ext0), "timer", or None (unknown, not a wake)."""
        fn = getattr(machine, "wake_reason", None)
        r = fn() if fn else None
        if r == getattr(machine, "EXT0_WAKE", 2):
            return "pin"
        return "timer" if r == getattr(machine, "TIMER_WAKE", 4) else None

    @staticmethod
    def pin_level(n):
        return machine.Pin(n, machine.Pin.IN).value()

    def unique_id(self):
        return "".join("%02x" % b for b in machine.unique_id())

    def rtc_memory(self, data=None):
        """Bytes kept across deep sleep and soft resets, or None where the chip has none."""
        mem = getattr(self.rtc, "memory", None)
        if mem is None:
            return None
        return mem() if data is None else mem(data)

    def rtc_ms(self):
        """ms since 1970 on the RTC: it keeps counting through deep sleep (ESP32; the host
        board's follows the simulator's world clock). RP2040: reset by its deep sleep."""
        y, mo, d, _wd, h, mi, s, sub = self.rtc.datetime()
        t = time.mktime((y, mo, d, h, mi, s, 0, 0))
        if time.gmtime(0)[0] == 2000:
            t += 946684800
        return t * 1000 + sub // 1000

    @staticmethod
    def epoch_ms():
        """ms since 1970 by the board's clock (the RTC on a chip: from 2000-01-01 after a
        power-on until something sets it)."""
        if hasattr(time, "time_ns"):
            t = time.time_ns() // 1000000
        else:
            t = int(time.time()) * 1000
        return t + 946684800000 if time.gmtime(0)[0] == 2000 else t

    def set_clock(self, ms):
        """Set the chip's RTC to ms since 1970 (the time survives deep sleep and soft
        resets). False where the node's clock is not the board's to set (the host)."""
        if PORT == "linux" or self.rtc is None:
            return False
        s = ms // 1000 - (946684800 if time.gmtime(0)[0] == 2000 else 0)
        y, mo, d, h, mi, sec, wd, _ = time.gmtime(s)
        self.rtc.datetime((y, mo, d, wd, h, mi, sec, (ms % 1000) * 1000))
        return True

    @staticmethod
    def epoch():
        """Seconds since 1970 (MicroPython's time.time() counts from 2000 on the chips). The
        unix port's time.time() is a float, with a 128 s step on a float32 build: time_ns()
        is exact everywhere it exists."""
        t = time.time_ns() // 1000000000 if hasattr(time, "time_ns") else int(time.time())
        return t + 946684800 if time.gmtime(0)[0] == 2000 else t
