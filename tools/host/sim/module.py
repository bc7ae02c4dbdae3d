"""One virtual rbAmp module at register level (rbamp-protocol.md §2-§14, model of §17).

The module is lazily simulated: `advance(t)` runs every RT commit up to world time t (µs),
so it is exact whatever the pace of the caller (real time, fast-forward, manual clock).
Commands live in commands.py, the 200 ms measurement engine and period latch in measure.py.
Runs under CPython and MicroPython.
"""
import struct

from . import regmap as R
from . import commands, measure
from .loads import Channel, Mains

_RO = frozenset(
    [R.STATUS, R.ERROR, R.VERSION, R.MODE, R.PERIOD_VALID, R.AC_FREQ, R.TOPOLOGY,
     R.CALIBRATION, R.CAPTURE_STATUS, R.PRODUCT_ID, R.HW_VARIANT, R.FW_TIER]
    + list(range(R.LUT_VALID, R.LUT_VALID + 1)) + list(range(0x0A, 0x18))
    + [R.AC_PERIOD, R.AC_PERIOD + 1] + list(range(R.UPTIME_S, 0x50))
    + list(range(R.CT_MODEL_CH0, R.CT_MODEL_CH0 + 3)) + list(range(R.CAPABILITY, R.UID + 12))
    + list(range(R.DIGEST, 0xE4)) + list(range(R.PERIOD_LATCH_MS, R.PERIOD_LATCH_MS + 4)))
_FACTORY = frozenset([R.PHASE_SAMPLES, R.PHASE_FRACTION] + list(range(R.NOISE_FLOORS, 0xEC))
                     + list(range(R.GAINS, 0x100)))
_FREEZE = ((R.RT_BLOCK, R.RT_BLOCK + R.RT_LEN), (R.DIGEST, R.DIGEST + R.DIGEST_LEN))


class Flash:
    """The user-config page (§9.2). `valid` False models a virgin/corrupted page."""

    def __init__(self, address=0x50, sensor_class=0, ct=(0, 0, 0), fleet=0, group=0,
                 label=b"", valid=True):
        self.address = address
        self.sensor_class = sensor_class
        self.ct = list(ct) + [0] * (3 - len(ct))
        self.staging = 0
        self.fleet = fleet
        self.group = group
        self.label = bytes(label) + bytes(8 - len(label))
        self.valid = valid
        self.writes = 0

    def erase(self):
        self.__init__(valid=False)


class RbAmpModule:
    """A module; keyword options mirror the [UNSPECIFIED] points of §17 (see bench README)."""

    def __init__(self, variant="UI1", address=0x50, tier=0, bidirectional=None, version=4,
                 uid=None, sensor_class=1, ct=(3, 3, 3), fitted=None, label=b"",
                 gc_enable=False, group=0, mode=0, virgin=False, boot_error=0, drift_ppm=0.0,
                 ct_codes="bench", first_commit_us=50000, legacy_burst="repeat",
                 pf_at_zero="zero", reset_acks=False, keep_condition_codes=True,
                 reject_reserved_writes=False, chip_timer_scale=0.735, latch_race_us=0,
                 reset_busy_us=R.RESET_BUSY_US, channels=None, mains=None, name=None):
        self.variant = R.VARIANT_BY_NAME[variant] if isinstance(variant, str) else variant
        if self.variant not in R.VARIANTS:
            raise ValueError("variant must be one of %s, got %r" % (list(R.VARIANTS), variant))
        vname, self.n_i, self.has_voltage = R.VARIANTS[self.variant]
        self.name = name or "%s@0x%02x" % (vname, address)
        self.version = version
        self.tier = tier
        self.bidirectional = (tier >= 1) if bidirectional is None else bool(bidirectional)
        self.mode = mode
        self.uid = bytes(uid) if uid else bytes((0x20 + self.variant, address, 0x52, 0x42,
                                                   0x4D, 0x31, 0, 0, 0, 0, 0x13, 0x37))
        ct = tuple(ct)[: self.n_i] + (0,) * (3 - min(3, self.n_i))
        if virgin:
            self.flash = Flash(valid=False)
        else:
            self.flash = Flash(address, sensor_class if version >= 3 else 0, ct,
                               1 if gc_enable else 0, group, label)
        self.fitted = list(fitted) if fitted is not None else list(ct)
        self.boot_error = boot_error
        self.drift_ppm = drift_ppm
        self.window_us = int(R.WINDOW_US / (1.0 + drift_ppm * 1e-6))
        self.ct_codes = {"bench": R.CT_CODES_BENCH, "all": R.CT_CODES_ALL}[ct_codes]
        if version < 4:
            self.ct_codes = R.CT_CODES_LEGACY
        self.first_commit_us = first_commit_us
        self.legacy_burst = legacy_burst
        self.pf_at_zero = pf_at_zero
        self.reset_acks = reset_acks
        self.keep_condition_codes = keep_condition_codes
        self.reject_reserved_writes = reject_reserved_writes
        self.chip_timer_scale = chip_timer_scale
        self.latch_race_us = latch_race_us
        self.empty_latches = 0   # test hook: the next n latches are empty (module_fault)
        self.reset_busy_us = reset_busy_us
        self.mains = mains or Mains()
        chans = list(channels or [])
        self.channels = [chans[i] if i < len(chans) else Channel() for i in range(3)]
        self.gain_error = 0.0
        self.stuck = False
        self.powered = False
        self.regs = bytearray(256)
        self.truth_t = None
        self.truth_imp = [0.0, 0.0, 0.0]  # W*us, integrated in world time
        self.truth_exp = [0.0, 0.0, 0.0]
        self.truth_at_latch = None        # import Wh per channel at the last good latch
        self.boots = 0
        self.plugged = True
        self.reset_nack_pending = False
        self.pulses = []  # world times of DRDY pulses not yet collected by the bus

    # ---- power and boot (§3.15, §6.2) -------------------------------------------------
    def power_on(self, t, cause=R.RC_POR, busy_us=R.BOOT_ACK_US):
        if self.truth_t is None:
            self.truth_t = t
        f = self.flash
        self.condition = 0
        if not f.valid:
            f.__init__(valid=False)
            self.condition = R.ERR_FLASH_PARAMS_BAD
        if self.boot_error:
            self.condition = self.boot_error
        self.bus_address = f.address
        self.r_class = f.sensor_class
        self.r_ct = list(f.ct)
        self.r_staging = f.staging
        self.r_fleet = f.fleet
        self.r_group = f.group
        self.r_label = bytearray(f.label)
        self.gc_enabled_boot = bool(f.fleet & 1) and self.version >= 4
        self.outcome = 0
        self.err_since = None
        self.events = R.EV_RESET | (R.EV_ERROR if self.condition else 0)
        self.event_mask = self.digest_cfg = 0
        self.thr_i = self.thr_p = 0xFFFF
        self.gc_tick = 0xFFFF
        self.zc_offset = 0xFFFF if not self.has_voltage else 0
        self.staged = None
        self.armed_at = None
        self.pointer = 0
        self.capture_page = 0
        self.capture_ready_at = None
        self.lut_slot = 0
        self.factory = bytearray(0x20)  # develop-gated factory bytes, RAM copy
        self.reset_cause = cause
        self.boot_t = t
        self.busy_until = t + busy_us
        self.flash_busy_until = 0
        self.next_commit = t + self.first_commit_us
        self.ready = False
        self.seq = 0
        self.powered = True
        self.boots += 1
        self.regs[:] = bytes(256)
        measure.boot(self, t)

    def power_off(self, t):
        """Power cut at t: a flash write in progress corrupts the params page (§9.6)."""
        self.advance(t)
        if self.powered and t < self.flash_busy_until:
            self.flash.valid = False
        self.powered = False

    def reboot(self, t, cause=R.RC_IWDG):
        self.power_off(t)
        self.power_on(t, cause)

    # ---- time -------------------------------------------------------------------------
    def next_event(self):
        return self.next_commit if self.powered else None

    def advance(self, t):
        """Run every RT commit due up to world time t and integrate the ground truth."""
        if self.truth_t is not None and t > self.truth_t:
            for ch in range(self.n_i):
                _, imp, exp = self.channels[ch].integrate(self.truth_t, t)
                self.truth_imp[ch] += imp
                self.truth_exp[ch] += exp
            self.truth_t = t
        while self.powered and self.next_commit <= t:
            measure.commit(self, self.next_commit)

    def chip_ms(self, t, t0):
        """Chip software timer: starved by interrupts, under-counts (§7.6)."""
        return int((t - t0) * (1.0 + self.drift_ppm * 1e-6) * self.chip_timer_scale / 1000)

    def busy(self, t):
        return (not self.powered) or t < self.busy_until

    def active_address(self):
        """The address the module answers on: read from flash at boot only (§9.3)."""
        return self.bus_address

    # ---- errors -----------------------------------------------------------------------
    def reject(self, t):
        self._set_outcome(R.ERR_PARAM, t)

    def _set_outcome(self, code, t):
        self.outcome = code
        if code and self.err_since is None:
            self.err_since = t

    def reg_error(self, t):
        if self.outcome:
            return self.outcome
        if self.condition:
            return self.condition
        return 0 if self.ready else R.ERR_NOT_READY

    # ---- transactions (§2.3-§2.6, §17.2) ----------------------------------------------
    def write(self, data, t):
        """One write transaction: pointer byte, then at most one data byte (bytes 3+ ignored)."""
        self.advance(t)
        if not data:
            return
        self.pointer = data[0]
        if len(data) < 2:
            return
        # Every register write first resets the outcome (§10.2); whether it also erases a
        # boot condition code is the keep_condition_codes option (§18 #12).
        self.outcome = 0
        if not self.keep_condition_codes and self.condition != R.ERR_CLONE:
            self.condition = 0
        if self.reg_error(t) == 0:
            self.err_since = None
        self._write_reg(data[0], data[1], t)

    def read(self, n, t, byte_us=0):
        """One read of n bytes from the pointer; freeze ranges are served from one image."""
        self.advance(t)
        out = bytearray(n)
        p = self.pointer
        if self.version < 4 and self.legacy_burst == "repeat":
            self._refresh(t)
            b = self._byte(p)
            for i in range(n):
                out[i] = b
            return out
        frozen = False
        for lo, hi in _FREEZE:
            if lo <= p < hi:
                frozen = True
        if p == R.CAPTURE_WINDOW:
            measure.capture_page(self, out, t)
            self.pointer = (p + n) & 0xFF
            return out
        self._refresh(t)
        for i in range(n):
            if i and not frozen and byte_us:
                tb = t + i * byte_us
                if self.powered and self.next_commit <= tb:
                    self.advance(tb)
                    self._refresh(tb)
            out[i] = self._byte((p + i) & 0xFF)
        self.pointer = (p + n) & 0xFF
        return out

    def _byte(self, a):
        if self.version < 4 and (0x27 <= a <= 0x2F or 0x46 <= a <= 0x85):
            return 0  # v1.0-v1.2: identity/fleet/health/digest not present [UNSPECIFIED]
        return self.regs[a]

    def _refresh(self, t):
        """Write the registers whose value is derived at read time into the image."""
        g = self.regs
        err = self.reg_error(t)
        ev = self.events
        g[R.STATUS] = (R.ST_READY if self.ready else 0) | (R.ST_ERROR if err else 0) | (
            R.ST_EVENTS if ev else 0)
        g[R.ERROR] = err
        g[R.VERSION] = self.version
        g[R.MODE] = self.mode
        g[R.CT_MODEL] = self.r_staging
        g[R.PERIOD_VALID] = self.period_valid
        g[R.LUT_VALID] = 0x03
        g[R.LUT_SLOT] = self.lut_slot
        g[R.TOPOLOGY] = self.n_i
        g[R.SENSOR_CLASS] = self.r_class if self.version >= 3 else 0
        g[R.FLEET_CONFIG] = self.r_fleet
        g[R.GROUP_ID] = self.r_group
        g[R.DIGEST_CONFIG] = self.digest_cfg
        g[R.EVENT_FLAGS] = ev
        g[R.EVENT_MASK] = self.event_mask
        struct.pack_into("<HH", g, R.THRESH_I_HI, self.thr_i, self.thr_p)
        g[R.I2C_ADDRESS] = self.staged if self.staged is not None else self.active_address()
        g[R.ADDR_COMMIT_MAGIC] = 0
        up = int((t - self.boot_t) * (1.0 + self.drift_ppm * 1e-6) / 1000000)
        struct.pack_into("<I", g, R.UPTIME_S, up)
        g[R.RESET_CAUSE] = self.reset_cause
        struct.pack_into("<H", g, R.ZC_OFFSET, self.zc_offset)
        g[R.CT_MODEL_CH0:R.CT_MODEL_CH0 + 3] = bytes(self.r_ct[i] if i < self.n_i else 0
                                                     for i in range(3))
        g[R.PRODUCT_ID] = 1
        g[R.HW_VARIANT] = self.variant
        g[R.FW_TIER] = (self.tier & 3) | (4 if self.bidirectional else 0) | 8
        cap = (R.CAP_UI if self.has_voltage else R.CAP_I) if self.version >= 4 else 0
        struct.pack_into("<HH", g, R.CAPABILITY, cap, self.gc_tick)
        g[R.UID:R.UID + 12] = self.uid
        g[R.LABEL:R.LABEL + 8] = self.r_label
        g[R.CAPTURE_STATUS] = 1 if (self.capture_ready_at is not None
                                    and t >= self.capture_ready_at) else 0
        g[R.CAPTURE_PAGE] = self.capture_page
        g[R.RT_STATUS] = 1 if self.ready and t >= self.rt_status_at else 0
        g[R.PHASE_SAMPLES] = self.factory[0]
        g[R.PHASE_FRACTION] = self.factory[1]

    def _write_reg(self, a, v, t):
        if a == R.COMMAND:
            commands.execute(self, v, t)
        elif a == R.CT_MODEL:
            commands.stage_ct(self, v, t)
        elif a == R.SENSOR_CLASS and self.version >= 3:
            commands.set_class(self, v, t)
        elif self.version < 4 and (0x27 <= a <= 0x2F or 0x46 <= a <= 0x85):
            return  # legacy firmware: registers absent, writes silently dropped
        elif a == R.FLEET_CONFIG:
            if v & 0xFE:
                return self.reject(t)  # reserved bits must be 0
            self.r_fleet = v
        elif a == R.GROUP_ID:
            self.r_group = v
        elif a == R.DIGEST_CONFIG:
            if v & 0xF0 or (not self.has_voltage and v & 0x0E):
                return self.reject(t)
            self.digest_cfg = v
        elif a == R.EVENT_FLAGS:
            self.events &= ~v & 0xFF
        elif a == R.EVENT_MASK:
            self.event_mask = v & 0x3F
        elif R.THRESH_I_HI <= a <= R.THRESH_P_HI + 1:
            commands.write_threshold(self, a, v)
        elif a == R.I2C_ADDRESS:
            commands.stage_address(self, v, t)
        elif a == R.ADDR_COMMIT_MAGIC:
            commands.arm(self, v, t)
        elif R.LABEL <= a < R.LABEL + 8:
            self.r_label[a - R.LABEL] = v
            self.events |= R.EV_CONFIG_CHANGED
        elif a == R.CAPTURE_PAGE:
            if v > 7:
                return self.reject(t)
            self.capture_page = v
        elif a == R.LUT_SLOT:
            if v > 3:
                return self.reject(t)
            self.lut_slot = v
        elif a in _FACTORY:
            if self.mode != 1:
                return self.reject(t)  # develop-gated: refused in production (§2.5)
            self.factory[a & 0x1F] = v
        elif a in _RO:
            self.reject(t)  # read-only register: simulator rejects (§2.5)
        elif self.reject_reserved_writes:
            self.reject(t)
        # else: reserved address, silently dropped (§2.5 allows both)

    # ---- introspection for tests --------------------------------------------------------
    def truth_wh(self, ch):
        """Ground truth (import Wh, export Wh) of channel ch since the simulator started."""
        return self.truth_imp[ch] / 3.6e9, self.truth_exp[ch] / 3.6e9
