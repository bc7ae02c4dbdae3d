"""Period metering (rbamp-protocol.md §7): latch, snapshot, energy on the master clock.

    dev.begin()                       # primer latch: anchor = now, snapshot discarded
    snap = dev.read_period_snapshot() # latch, settle 50 ms, read, integrate
    print(snap.avg_power, dev.energy.wh(0))

Rules kept here: the anchor moves only with a snapshot that was read; a stale latch keeps
it, so the next good latch covers the whole gap (never lost, never counted twice); a
snapshot whose read failed is read again before the next latch; a module that rebooted
restarts the anchor without inventing energy (§14.3).
"""
import struct

from ._time import sleep_ms, ticks_add, ticks_diff, ticks_ms
from . import _regs as R
from .energy import to_mw
from .errors import RbAmpIOError, RbAmpParamError, RbAmpStaleError


class PeriodSnapshot:
    """The latched period of one module (reused from call to call)."""

    def __init__(self):
        self.valid = False
        self.primer = False      # first latch after an anchor loss: no energy from it
        self.gap = False         # the module rebooted: energy since the last latch is lost
        self.avg_power = [0.0, 0.0, 0.0]  # W, per channel (import only on page 0)
        self.max_power = 0.0     # W, largest window P of ch0
        self.commit_count = 0    # RT windows in the period
        self.latch_ms = 0        # chip-timer ms between latches (diagnostic only, §7.6)
        self.dt_ms = 0           # master time the energy was integrated over
        self.t_latch = 0         # master ticks_ms of the latch
        self.uwh = [0, 0, 0]     # energy added by this period, µWh


class Period:
    def __init__(self):
        self._anchor = None
        self._pending = None     # latch time of a snapshot not read yet
        self._checked = False    # its reboot/validity check is done
        self._pending_fails = 0
        self.lost_periods = 0    # snapshots that could not be read at all (energy lost)
        self.stale_count = 0
        self.module_reboots = 0
        self.period = PeriodSnapshot()
        self._pa = bytearray(20)  # 0xDC..0xEF: AVG_P ch0, MAX_P, noise floors, LATCH_MS
        self._pb = bytearray(12)  # 0xBE..0xC9: COMMIT_CNT, AVG_P ch1, AVG_P ch2

    def _v13(self):
        return (self.firmware_version or 0) >= 4

    @property
    def period_pending(self):
        """True while a latch's snapshot waits to be read (the next call reads it, no latch)."""
        return self._pending is not None

    def latch_period(self):
        """LATCH_PERIOD; returns the master time stamp (ticks_ms) of the latch.
        A latch is never blindly repeated: if its ACK was lost, PERIOD_READY (cleared just
        before) tells whether it ran, because a second latch 5 ms later would be empty."""
        io = self.io
        if self._v13():
            io.write_u8(R.EVENT_FLAGS, R.EV_PERIOD_READY)
        for attempt in range(io.tries):
            try:
                io.write_u8(R.COMMAND, R.OP_LATCH, retry=False)
                return ticks_ms()
            except RbAmpIOError:
                t = ticks_ms()
                if self._v13() and io.read_u8(R.EVENT_FLAGS) & R.EV_PERIOD_READY:
                    return t
                if attempt + 1 >= io.tries:
                    raise
                io.retry_count += 1
                sleep_ms(io.gap_ms)

    def is_period_valid(self):
        """PERIOD_VALID: outcome of the most recent latch (a level, §3.2)."""
        return bool(self.io.read_u8(R.PERIOD_VALID) & 1)

    def read_period_avg_power(self, ch=0):
        self._check_ch(ch)
        return self.io.read_f32((R.PERIOD_AVG_P, R.PERIOD_AVG_P_CH1, R.PERIOD_AVG_P_CH1 + 4)[ch])

    def read_period_max_power(self):
        return self.io.read_f32(R.PERIOD_MAX_P)

    def read_period_latch_ms(self):
        return self.io.read_u32(R.PERIOD_LATCH_MS)

    def prime(self, timeout_ms=1000):
        """Primer latch (§7.4): its snapshot is discarded, its time becomes the anchor.
        Retried every 250 ms until valid, so the anchor matches the module's period."""
        if self._v13():
            self.io.write_u8(R.EVENT_FLAGS, R.EV_RESET)  # later reboots become visible
        t0 = ticks_ms()
        while True:
            t = self.latch_period()
            sleep_ms(R.T_LATCH)
            if self.is_period_valid():
                self._anchor = t
                self._pending = None
                return t
            if ticks_diff(ticks_ms(), t0) > timeout_ms:
                raise RbAmpStaleError(61, "rbAmp 0x%02x: primer latch stays empty" % self.addr)
            sleep_ms(250)

    def resume(self, elapsed_ms):
        """After a deep sleep of the master (its ticks restart): our last latch was
        elapsed_ms ago on a clock that kept running (the RTC). The next snapshot covers that
        time; the module kept its period open meanwhile (no primer)."""
        if elapsed_ms < 0:
            raise RbAmpParamError(22, "elapsed_ms must be >= 0, not %r" % (elapsed_ms,))
        self._anchor = ticks_add(ticks_ms(), -elapsed_ms)
        self._pending = None

    def read_period_snapshot(self, settle_ms=R.T_LATCH, skip_latch=False, dt_ms=None,
                             latched_at=None):
        """Close the period and add its energy. skip_latch=True: someone else latched
        (e.g. the primer on a deep-sleep wake) and dt_ms is the real elapsed time since the
        previous latch (from a clock that survived the sleep). latched_at: the ticks_ms of a
        latch made elsewhere (General Call). Raises RbAmpStaleError on an empty latch."""
        if skip_latch and dt_ms is None:
            raise RbAmpParamError(22, "skip_latch=True needs dt_ms, the real time since the last latch")
        snap = self.period
        snap.primer = snap.gap = False
        if self._pending is None:      # else: a latch whose outcome was not read yet
            if skip_latch or latched_at is not None:
                t = ticks_ms() if latched_at is None else latched_at
            else:
                t = self.latch_period()
                if settle_ms:
                    sleep_ms(settle_ms)
            self._pending = t
            self._checked = False
        t = self._pending
        try:
            if not self._checked:      # reboot witness, then validity: once per latch
                if self._v13() and self.io.read_u8(R.EVENT_FLAGS) & R.EV_RESET:
                    self._pending = None
                    return self._module_rebooted(t)
                if not self.is_period_valid():
                    self._pending = None
                    self.stale_count += 1
                    snap.valid = False
                    raise RbAmpStaleError(61, "rbAmp 0x%02x: empty latch, anchor kept" % self.addr)
                self._checked = True
            self._read_snapshot(snap)
        except RbAmpIOError:
            self._pending_fails += 1
            if self._pending_fails >= 3:  # give it up: the next period starts at that latch
                self._anchor, self._pending, self._pending_fails = t, None, 0
                self.lost_periods += 1
            raise
        self._pending = None
        self._pending_fails = 0
        snap.valid = True
        snap.t_latch = t
        if skip_latch:
            dt = dt_ms
        elif self._anchor is None:
            snap.primer = True         # no anchor yet: this latch only becomes one
            dt = 0
        else:
            dt = ticks_diff(t, self._anchor)
        self._anchor = t
        snap.dt_ms = dt
        e = self.energy
        if e is not None:              # energy=False: the caller books the snapshot itself
            for ch in range(self.channels):
                uwh0 = e.uwh(ch)
                if dt > 0:
                    e.add(ch, to_mw(snap.avg_power[ch]), dt)
                snap.uwh[ch] = e.uwh(ch) - uwh0
        return snap

    def _module_rebooted(self, t):
        """§14.3: its live period began at its boot; energy since our last latch is lost.
        The latch just made closed the windows since the boot: that snapshot is read when it
        is valid (avg_power, commit_count), but no energy is booked (no anchor for the boot);
        a caller that knows the window length can use it (commit_count x 200 ms)."""
        self.io.write_u8(R.EVENT_FLAGS, R.EV_RESET | R.EV_PERIOD_READY)
        self.module_reboots += 1
        self._anchor = t
        self._pending = None
        snap = self.period
        snap.valid = snap.primer = snap.gap = True
        snap.dt_ms = 0
        snap.t_latch = t
        snap.uwh[0] = snap.uwh[1] = snap.uwh[2] = 0
        snap.commit_count = 0
        try:
            if self.is_period_valid():
                self._read_snapshot(snap)
        except RbAmpIOError:
            snap.commit_count = 0
        return snap

    def _read_snapshot(self, snap):
        io = self.io
        io.read_into(R.PERIOD_AVG_P, self._pa)
        avg0, snap.max_power = struct.unpack_from("<ff", self._pa)
        snap.latch_ms = struct.unpack_from("<I", self._pa, 16)[0]
        avg = snap.avg_power
        avg[0] = avg0
        if self.channels > 1:
            io.read_into(R.PERIOD_COMMIT_CNT, self._pb)
            snap.commit_count, avg[1], avg[2] = struct.unpack_from("<Iff", self._pb)
        else:
            snap.commit_count = io.read_u32(R.PERIOD_COMMIT_CNT)
        for ch in range(self.channels):
            v = avg[ch]
            if not (-30000.0 <= v <= 30000.0):  # NaN fails too
                self.sanity_reject_count += 1
                raise RbAmpIOError(5, "rbAmp 0x%02x: implausible period average" % self.addr)
