"""Power events: a step in a channel's power that holds for a few RT windows.

A window whose power differs from the settled level by more than max(threshold_w,
threshold_pct of the level) starts a candidate; `settle` windows in a row that agree with
it (within the same threshold) make an event (before -> after: the settled level, the
newest of those windows). A single spike, or a level that keeps moving, never fires.
Integer mW only: runs in the sampling hot path.
"""


class StepDetector:
    def __init__(self, channels=3, threshold_w=100.0, threshold_pct=20.0, settle=3):
        self.thr = int(threshold_w * 1000)       # mW
        self.pm = int(threshold_pct * 10)        # per mille of the level
        self.settle = settle
        self.base = [0] * channels
        self.cand = [0] * channels
        self.n = [0] * channels
        self.init = bytearray(channels)
        self.before = 0                          # of the last event, mW
        self.after = 0

    def _limit(self, level):
        lim = (abs(level) // 1000) * self.pm     # small integers on 32-bit ports
        return lim if lim > self.thr else self.thr

    def update(self, ch, mw):
        """Feed one window's power (mW); True when an event completes on this window."""
        if not self.init[ch]:
            self.init[ch] = 1
            self.base[ch] = mw
            return False
        b = self.base[ch]
        if abs(mw - b) <= self._limit(b):
            self.n[ch] = 0
            self.base[ch] = b + ((mw - b) >> 2)  # follow slow drift
            return False
        c = self.cand[ch]
        if self.n[ch] and abs(mw - c) <= self._limit(c):
            self.n[ch] += 1
            self.cand[ch] = c + ((mw - c) >> 1)
        else:
            self.n[ch] = 1
            self.cand[ch] = mw
        if self.n[ch] >= self.settle:
            # the newest window is the new level: the first one of a step may hold part of
            # the old level (the step fell inside it), the candidate's average still has it
            self.before = b
            self.after = mw
            self.base[ch] = mw
            self.n[ch] = 0
            return True
        return False
