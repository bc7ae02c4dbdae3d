"""Sleep mode's early wake (config sleep.wake_pin + sleep.wake_w, ESP32): a module whose
power rises above wake_w holds its DRDY line LOW (alarm mode: THRESH_P_HI, EVENT_MASK,
rbamp-protocol §6.3, §12), and that line wakes the board before the period is due.

    line = WakeLine(board, cfg["sleep"], early=<this wake came from the pin>)
    line.disarm(members, hub)   # at every wake, after the energy step: line released, the
                                # modules whose threshold tripped give a "threshold" event
    pin = line.arm(members)     # just before the deep sleep: the pin to wake on, or None

At most one early wake per period: after one, the node sleeps a whole period on the timer
(a load that stays high would otherwise wake it again at once). A module already above the
threshold when the node goes to sleep is not armed: that is no rise, and its held line would
wake the board straight away. Only v1.3 modules with voltage have the threshold (an I-only
module's P is 0). The threshold is RAM in the module: a module that reboots is disarmed.
"""
from rbamp import RbAmpError, RbAmpEvent

from .. import log


class WakeLine:
    def __init__(self, board, sleep_cfg, early=False):
        self.board = board
        self.pin = sleep_cfg["wake_pin"]
        self.w = sleep_cfg["wake_w"]
        self.early = early          # this wake came from the line

    @staticmethod
    def _capable(m):
        return m.dev is not None and m.uid is not None and m.has_energy

    @staticmethod
    def _power_w(m):
        """The module's power now (sum of its channels, one RT read), or None."""
        if not m.snapshot():
            return None
        return sum(m.p[ch] for ch in range(m.channels)) / 1000

    def disarm(self, members, hub):
        """The modules armed (their EVENT_MASK says so: a rebooted one is not) are disarmed:
        the line is free; those whose threshold flag is set give an event."""
        if self.pin is None:
            return
        tripped = []
        for m in members:
            if not self._capable(m):
                continue
            try:
                if not m.dev.read_event_mask() & RbAmpEvent.THRESH_P:
                    continue
                m.dev.set_event_mask(0)
                if m.dev.read_event_flags() & RbAmpEvent.THRESH_P:
                    tripped.append(m.id)
                    hub.events.put({"kind": "threshold", "module": m.id,
                                    "t": self.board.epoch(), "limit_w": self.w,
                                    "w": self._power_w(m)})
            except RbAmpError as e:
                log.warning("sleep", "%s: early-wake flags unreadable (%s)", m.id, e)
        if self.early:
            if tripped:
                log.info("sleep", "early wake: above %d W: %s", self.w, ", ".join(tripped))
            else:
                log.warning("sleep", "early wake on GPIO %d without a module above %d W: a DRDY "
                            "pulse? (the wake line needs its RC filter, CONFIG.md)", self.pin,
                            self.w)

    def arm(self, members):
        """Threshold, flag cleared, mask set on every module below wake_w now; the pin to
        wake on (None: the timer only)."""
        if self.pin is None:
            return None
        if self.early:
            log.info("sleep", "woke early: this sleep is on the timer only (one early wake "
                     "per period)")
            return None
        armed, high = [], []
        for m in members:
            if not self._capable(m):
                continue
            try:
                w = self._power_w(m)
                if w is None or w >= self.w:
                    high.append(m.id)
                    continue
                m.dev.set_thresholds(power_w=self.w)   # mask is 0 here: a half-written
                m.dev.clear_event_flags(RbAmpEvent.THRESH_P)   # threshold holds nothing
                m.dev.set_event_mask(RbAmpEvent.THRESH_P)
                armed.append(m.id)
            except RbAmpError as e:
                log.warning("sleep", "%s: early wake not armed (%s)", m.id, e)
        if high:
            log.info("sleep", "early wake not armed on %s (above %d W now, or unread)",
                     ", ".join(high), self.w)
        if not armed:
            return None
        if not self.board.pin_level(self.pin):
            log.warning("sleep", "wake line GPIO %d is LOW already: the timer only", self.pin)
            return None
        log.info("sleep", "early wake armed above %d W on %s", self.w, ", ".join(armed))
        return self.pin
