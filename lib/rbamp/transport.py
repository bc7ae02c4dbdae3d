"""Register access to one module: retries, counters, burst or byte-per-transaction reads.

Works with machine.I2C / SoftI2C or anything with readfrom_mem_into / writeto_mem
(see smbus.py for CPython on a Linux SBC). Never hands out the buffer of a failed transfer.
"""
import struct
from sys import platform

from ._time import sleep_ms
from .errors import RbAmpIOError

# ESP32 masters NACK ~20 % of transactions at 100 kHz (rbamp-protocol.md §2.8): 3 tries
# 5 ms apart leave < 0.8 % failures. Other ports see ~0 % and do not retry by default.
DEFAULT_TRIES = 3 if platform == "esp32" else 1
DEFAULT_GAP_MS = 5


class Transport:
    def __init__(self, i2c, addr, tries=None, gap_ms=DEFAULT_GAP_MS):
        self.i2c = i2c
        self.addr = addr
        self.tries = DEFAULT_TRIES if tries is None else max(1, tries)
        self.gap_ms = gap_ms
        self.burst = True  # v1.3 reads auto-increment; legacy firmware: one byte each
        self.transactions = 0
        self.retry_count = 0
        self.retry_exhaustion_count = 0
        self._b = bytearray(4)
        self._one = bytearray(1)  # byte-per-transaction scratch; must not alias _b
        mv = memoryview(self._b)
        self._v1, self._v2, self._v4 = mv[:1], mv[:2], mv[:4]

    def reset_counters(self):
        self.transactions = self.retry_count = self.retry_exhaustion_count = 0

    def _failed(self, attempt, what, reg):
        if attempt + 1 < self.tries:
            self.retry_count += 1
            sleep_ms(self.gap_ms)
            return
        self.retry_exhaustion_count += 1
        raise RbAmpIOError(5, "rbAmp 0x%02x: %s 0x%02x failed %d time(s)"
                           % (self.addr, what, reg, self.tries))

    def read_once(self, reg, buf):
        """One read transaction into buf, retried; raises RbAmpIOError when all fail."""
        for attempt in range(self.tries):
            self.transactions += 1
            try:
                self.i2c.readfrom_mem_into(self.addr, reg, buf)
                return
            except OSError:
                for i in range(len(buf)):  # poison: a later bug must not see stale bytes
                    buf[i] = 0xFF
                self._failed(attempt, "read", reg)

    def read_into(self, reg, buf):
        """buf <- registers reg.. : one burst on v1.3, else one transaction per byte."""
        if self.burst or len(buf) == 1:
            self.read_once(reg, buf)
            return
        one = self._one
        for i in range(len(buf)):
            self.read_once(reg + i, one)
            buf[i] = one[0]

    def read_f32_into(self, reg, buf, off):
        """Legacy firmware: one float from four single-byte reads into buf[off:off+4].
        An RT commit between the reads can splice two windows into one float (§2.6), so
        the sign/exponent bytes are read again and the float re-read if they moved."""
        one = self._one
        for _ in range(3):
            for i in (3, 2, 1, 0):
                self.read_once(reg + i, one)
                buf[off + i] = one[0]
            self.read_once(reg + 3, one)
            hi = one[0]
            self.read_once(reg + 2, one)
            if hi == buf[off + 3] and (one[0] ^ buf[off + 2]) & 0x80 == 0:
                return
        raise RbAmpIOError(5, "rbAmp 0x%02x: value at 0x%02x keeps changing" % (self.addr, reg))

    def write_u8(self, reg, value, retry=True):
        """One write transaction [reg, value]. retry=False for writes whose repetition
        would change the outcome (a command that may have run although the ACK was lost)."""
        self._b[0] = value
        tries = self.tries if retry else 1
        for attempt in range(tries):
            self.transactions += 1
            try:
                self.i2c.writeto_mem(self.addr, reg, self._v1)
                return
            except OSError:
                if not retry:
                    self.retry_exhaustion_count += 1
                    raise RbAmpIOError(5, "rbAmp 0x%02x: write 0x%02x failed" % (self.addr, reg))
                self._failed(attempt, "write", reg)

    def read_u8(self, reg):
        self.read_once(reg, self._v1)
        return self._b[0]

    def read_u16(self, reg):
        self.read_into(reg, self._v2)
        return self._b[0] | (self._b[1] << 8)

    def read_u32(self, reg):
        self.read_into(reg, self._v4)
        return struct.unpack_from("<I", self._b)[0]

    def read_f32(self, reg):
        if self.burst:
            self.read_into(reg, self._v4)
        else:
            self.read_f32_into(reg, self._b, 0)
        return struct.unpack_from("<f", self._b)[0]

    def _stable(self, read, reg, tries=4):
        """Registers updated without freeze (§2.6): read until two reads agree."""
        last = read(reg)
        for _ in range(tries):
            v = read(reg)
            if v == last:
                return v
            last = v
        raise RbAmpIOError(5, "rbAmp 0x%02x: register 0x%02x unstable" % (self.addr, reg))

    def read_stable_u8(self, reg):
        return self._stable(self.read_u8, reg)

    def read_stable_u16(self, reg):
        return self._stable(self.read_u16, reg)
