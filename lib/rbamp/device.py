"""RbAmp: one module — detection, identity, real-time values, errors and events.

    from machine import I2C
    from rbamp import RbAmp
    with RbAmp(I2C(0, freq=50000), 0x50) as dev:
        print(dev.voltage, dev.current[0], dev.power[0])

Period metering lives in period.py, configuration in commissioning.py (mixed in below).
"""

from ._time import sleep_ms, ticks_diff, ticks_ms
from . import _regs as R
from .commissioning import Commissioning
from .energy import Energy
from .errors import (RbAmpIOError, RbAmpNotReadyError, RbAmpParamError, RbAmpTimeoutError,
                     RbAmpVersionError)
from .fleet_config import FleetConfig
from .period import Period
from .rt import CEILINGS, F_I, F_IPK, F_P, F_PF, F_U, F_UPK, RtSnapshot, implausible
from .transport import Transport

VARIANTS = {1: "UI1", 2: "UI2", 3: "UI3", 4: "I1", 5: "I2", 6: "I3"}


class _PerChannel:
    """dev.current[ch] style reads: each index is one fresh register read."""

    def __init__(self, fn):
        self._fn = fn

    def __getitem__(self, ch):
        return self._fn(ch)


class RbAmp(Period, Commissioning, FleetConfig):
    def __init__(self, bus, addr=0x50, *, tries=None, variant=None, energy=True):
        """bus: machine.I2C/SoftI2C (or the smbus adapter). variant: needed only for
        legacy firmware (v1.0-v1.2) that has no identity registers. energy=False: keep no
        energy totals (`dev.energy` is None, a snapshot's `uwh` stays 0), for a caller that
        books the snapshots itself."""
        if not 0x08 <= addr <= 0x77:
            raise RbAmpParamError(22, "I2C address 0x%02x outside 0x08..0x77" % addr)
        self.io = Transport(bus, addr, tries)
        self.addr = addr
        self.firmware_version = None
        self.variant = variant
        self.channels = None
        self.capability = 0
        self.tier = 0
        self.sanity_reject_count = 0
        self.rt = RtSnapshot()
        self.energy = Energy(3) if energy else None
        self._log = None
        self.current = _PerChannel(self.read_current)
        self.power = _PerChannel(self.read_power)
        self.power_factor = _PerChannel(self.read_power_factor)
        self.reactive_power = _PerChannel(self.read_reactive_power)
        self.current_peak = _PerChannel(self.read_current_peak)
        Period.__init__(self)

    # ---- lifecycle ------------------------------------------------------------------
    def __enter__(self):
        self.begin()
        return self

    def __exit__(self, *exc):
        return False

    def set_logger(self, fn):
        """fn(msg) receives the driver's few diagnostic lines (default: none)."""
        self._log = fn

    def _say(self, msg, *args):
        if self._log:
            self._log(msg % args if args else msg)

    def probe(self):
        """True if the module ACKs and answers a read of STATUS."""
        try:
            self.io.read_u8(R.STATUS)
            return True
        except OSError:
            return False

    def wait_ready(self, timeout_ms=1000):
        """Wait for STATUS.READY (first RT commit after a reset, §6.2)."""
        t0 = ticks_ms()
        while True:
            try:
                if self.io.read_u8(R.STATUS) & 1:
                    return True
            except RbAmpIOError:
                pass  # NACK while booting
            if ticks_diff(ticks_ms(), t0) >= timeout_ms:
                raise RbAmpTimeoutError(110, "rbAmp 0x%02x not ready after %d ms"
                                        % (self.addr, timeout_ms))
            sleep_ms(10)

    def begin(self, prime=True, timeout_ms=1000):
        """Detect the module (§14.1), wait until it measures, and take the primer latch."""
        self.wait_ready(timeout_ms)
        v = self.io.read_u8(R.VERSION)
        if v in (0x00, 0xFF):
            raise RbAmpVersionError(95, "rbAmp 0x%02x: VERSION 0x%02x is not an rbAmp" % (self.addr, v))
        self.firmware_version = v
        self.io.burst = v >= 4  # read auto-increment is a v1.3 property (§18 #1)
        if v >= 4:
            self.read_capability()
            self.read_variant()
            self.tier = self.io.read_u8(R.FW_TIER)
        elif self.variant is None:
            raise RbAmpVersionError(95, "rbAmp 0x%02x: legacy firmware v1.%d has no identity "
                                    "registers; pass variant=" % (self.addr, v - 1))
        self._set_variant(self.variant)
        if prime:
            self.prime()
        return self

    def _set_variant(self, variant):
        if isinstance(variant, str):
            for k, name in VARIANTS.items():
                if name == variant:
                    variant = k
        if variant not in VARIANTS:
            raise RbAmpParamError(22, "variant must be one of %s, got %r" % (list(VARIANTS.values()), variant))
        self.variant = variant
        self.channels = (variant - 1) % 3 + 1
        self.rt.channels = self.channels
        if self.energy is not None:
            self.energy.channels = self.channels

    # ---- identity (§3.9, §14.1) ---------------------------------------------------------
    def read_product_id(self):
        return self.io.read_u8(R.PRODUCT_ID)

    def read_variant(self):
        pid = self.read_product_id()
        if pid != 0x01:
            raise RbAmpVersionError(95, "0x%02x: PRODUCT_ID 0x%02x is not an rbAmp sensor" % (self.addr, pid))
        hw = self.io.read_u8(R.HW_VARIANT)
        if hw not in VARIANTS:
            raise RbAmpVersionError(95, "0x%02x: unknown HW_VARIANT 0x%02x" % (self.addr, hw))
        if (hw <= 3) != bool(self.capability & R.CAP_VOLTAGE):
            raise RbAmpVersionError(95, "0x%02x: variant %s disagrees with CAPABILITY 0x%04x "
                                    "(mis-flashed module)" % (self.addr, VARIANTS[hw], self.capability))
        self.variant = hw
        return hw

    def read_capability(self):
        self.capability = self.io.read_u16(R.CAPABILITY)
        return self.capability

    def has_voltage(self):
        return bool(self.capability & R.CAP_VOLTAGE) if self.capability else self.variant <= 3

    def read_uid(self):
        b = bytearray(12)
        self.io.read_into(R.UID, b)
        return bytes(b)

    def read_label(self):
        b = bytearray(8)
        self.io.read_into(R.LABEL, b)
        return bytes(b).split(b"\0")[0].decode()

    def variant_name(self):
        return VARIANTS.get(self.variant, "?")

    # ---- real-time values (§3.11, §6) ---------------------------------------------------
    def _check_ch(self, ch):
        if not 0 <= ch < (self.channels or 3):
            raise RbAmpParamError(22, "channel %r not on this module (0..%d)" % (ch, (self.channels or 3) - 1))

    def read_rt(self, snap=None):
        """Read the whole RT block of one RT commit into snap (default: dev.rt).
        One transaction on v1.3; allocates nothing. Returns snap."""
        snap = self.rt if snap is None else snap
        for attempt in range(self.io.tries):
            if self.io.burst:
                self.io.read_into(R.RT_BLOCK, snap.buf)
            else:
                self._read_rt_legacy(snap.buf)
            if implausible(snap.buf) < 0:
                snap.reads += 1
                return snap
            self.sanity_reject_count += 1
        raise RbAmpIOError(5, "rbAmp 0x%02x: implausible RT block" % self.addr)

    def _read_rt_legacy(self, buf):
        """No burst before v1.3: only the fields of present channels, each float guarded."""
        n = self.channels
        for k in range(14):
            base = 0 if k < 2 else (k - 2) % 3
            if k < 2 or base < n:
                self.io.read_f32_into(R.RT_BLOCK + 4 * k, buf, 4 * k)
            else:
                for i in range(4):
                    buf[4 * k + i] = 0

    def _value(self, reg, k):
        """One float read, checked against the ceiling of RT field k (§15)."""
        ceil = CEILINGS[k]
        for attempt in range(self.io.tries):
            v = self.io.read_f32(reg)
            if -ceil <= v <= ceil:  # NaN and Inf fail this too
                return v
            if k >= F_PF and v != v:
                return v  # PF is NaN when there is no current: unknown, not an error
            self.sanity_reject_count += 1
        raise RbAmpIOError(5, "rbAmp 0x%02x: implausible value at 0x%02x" % (self.addr, reg))

    def _field(self, k, ch=0):
        """Field k of the RT block for channel ch: register RT_BLOCK + 4 * (k + ch)."""
        if k >= F_I:
            self._check_ch(ch)
        return self._value(R.RT_BLOCK + 4 * (k + ch), k + ch)

    def read_voltage(self):
        return self._field(F_U)

    def read_voltage_peak(self):
        return self._field(F_UPK)

    def read_current(self, ch=0):
        return self._field(F_I, ch)

    def read_current_peak(self, ch=0):
        return self._field(F_IPK, ch)

    def read_power(self, ch=0):
        return self._field(F_P, ch)

    def read_power_factor(self, ch=0):
        return self._field(F_PF, ch)

    def read_reactive_power(self, ch=0):
        """Q in var (+ inductive); outside the read-freeze of the RT block (§2.6).
        Checked against the ceiling of P."""
        self._check_ch(ch)
        return self._value(R.Q_REAC + 4 * ch, F_P + ch)

    def read_frequency(self):
        return self.io.read_u8(R.AC_FREQ)

    @property
    def voltage(self):
        return self.read_voltage()

    @property
    def voltage_peak(self):
        return self.read_voltage_peak()

    @property
    def frequency(self):
        return self.read_frequency()

    def is_ready(self):
        return bool(self.io.read_u8(R.STATUS) & 1)

    def read_seq(self):
        """SEQ of the newest RT commit (0..255, +1 per window) from the digest header
        (§11: STATUS mirror and SEQ, one 2-byte read frozen with the window; v1.3),
        or -1 while STATUS.READY is clear (no commit since the module booted).
        Allocates nothing: a master on a shared DRDY line asks each module whether the
        edge was its own before reading 56 bytes."""
        v = self.io.read_u16(R.DIGEST)
        return v >> 8 if v & 1 else -1

    def require_ready(self):
        if not self.is_ready():
            raise RbAmpNotReadyError(11, "rbAmp 0x%02x has no measurement yet" % self.addr)

    # ---- errors and events (§10) --------------------------------------------------------
    def read_last_error(self):
        return self.io.read_u8(R.ERROR)

    def has_error(self):
        return bool(self.io.read_u8(R.STATUS) & 0x02)

    def read_event_flags(self):
        return self.io.read_u8(R.EVENT_FLAGS)

    def clear_event_flags(self, mask=0xFF):
        self.io.write_u8(R.EVENT_FLAGS, mask & 0x3F)

    def clear_error(self):
        """CLEAR_ERROR then W1C of EVENT bit 3 (§10.4: doing both is right either way)."""
        self.io.write_u8(R.COMMAND, R.OP_CLEAR_ERROR)
        sleep_ms(5)
        self.io.write_u8(R.EVENT_FLAGS, R.EV_ERROR)

    def read_uptime(self):
        return self.io.read_u32(R.UPTIME_S)

    # ---- diagnostics ------------------------------------------------------------------
    @property
    def retry_count_total(self):
        return self.io.retry_count

    @property
    def retry_exhaustion_count(self):
        return self.io.retry_exhaustion_count

    def reset_counters(self):
        self.io.reset_counters()
        self.sanity_reject_count = 0
        self.stale_count = 0
