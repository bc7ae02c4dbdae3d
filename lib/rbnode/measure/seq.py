"""Which RT windows of a module are new: its SEQ (v1.3 digest header, 2 bytes).

On a shared DRDY line an edge does not say whose it is: SEQ does. It also shows a restart
that leaves no gap in the edges (a fast reboot): a SEQ that does not fit the time since the
last window read, or READY clear. Owned by the Sampler, one per module; it starts again
whenever the module is detected again. Allocates nothing.
"""
from time import ticks_diff, ticks_ms

from rbamp import RT_WINDOW_MS as W, RbAmpError

from .. import log

EARLY_MS = 10       # a window's stamp is never before its commit: tick rounding, drift


class Seq:
    def __init__(self, meter):
        self.m = meter
        self.detects = -1                  # the meter's detection this state belongs to
        self.use_seq = False               # v1.3: the digest's SEQ tells which window is new
        self.seq = -1                      # SEQ of the window read last (-1: none)
        self.seq_new = -1                  # SEQ of the window being read
        self.digest_off = 0                # header READY clear but STATUS.READY set, in a row
        self.restarted = False             # SEQ or READY says the module restarted
        self.restarts = 0

    def fresh(self, late):
        """RT windows the module committed since the one read last: 0 none (on a shared
        DRDY line the edge was another module's), -1 the bus failed. v1.3 firmware: from
        SEQ; older firmware: always 1. The time since the last window is taken from its
        stamp, which may be up to `late` ms after its commit (an IRQ held off, a poll): k
        windows fit an elapsed time el when (el - EARLY_MS) // 200 <= k <= (el + late) // 200,
        two values of the 256 a restarted SEQ can take when EARLY_MS + late < 200."""
        m = self.m
        if m.detects != self.detects:      # detected (again): v1.3 has SEQ, none read yet
            self.detects = m.detects
            self.use_seq = m.dev.firmware_version >= 4
            self.seq, self.restarted, self.digest_off = -1, False, 0
        if not self.use_seq:
            return 1
        try:
            s = m.dev.read_seq()
            if s < 0 and m.dev.is_ready():
                self._digest_off()
                return 1
        except RbAmpError:
            m.read_errors += 1
            m.fails += 1
            return -1
        self.digest_off = 0
        if s < 0:                      # booted, no window yet
            self._restart()
            self.seq = -1
            return 0
        if s == self.seq:
            return 0
        k = 1
        if self.seq >= 0:
            k = (s - self.seq) & 0xFF
            sh = m.shadow
            el = ticks_diff(ticks_ms(), sh.t_read)
            if sh.have_t and not (el - EARLY_MS) // W <= k <= (el + late) // W:
                self._restart()
        self.seq_new = s
        return k

    def read(self):
        """The window SEQ announced was read."""
        self.seq = self.seq_new

    def take_restart(self):
        """Whether a restart was seen before the window being booked; cleared (the shadow
        books it as a blackout)."""
        r = self.restarted
        self.restarted = False
        return r

    def _restart(self):
        if not self.restarted:
            self.restarted = True
            self.restarts += 1

    def _digest_off(self):
        """The digest header reads 'not ready' while the module measures: this firmware
        serves no digest without DIGEST_CONFIG. Three in a row: stop asking."""
        self.digest_off += 1
        if self.digest_off >= 3:
            self.use_seq = False
            log.warning("meter", "%s: no SEQ in the digest window; every DRDY edge reads the "
                        "RT block", self.m.id)
