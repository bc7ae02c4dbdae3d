"""World clocks for the simulator, in integer microseconds."""
import time


class ManualClock:
    """Deterministic time for unit tests: only moves when told to."""

    def __init__(self, t_us=0):
        self.t = t_us

    def now_us(self):
        return self.t

    def advance(self, us):
        self.t += int(us)

    def fast_forward(self, us):
        self.t += int(us)


class RealClock:
    """Host time plus a fast-forward offset (a node's deep sleep skips simulated time)."""

    def __init__(self):
        self.offset = 0
        if hasattr(time, "monotonic_ns"):
            self._t0 = time.monotonic_ns()
            self._now = lambda: (time.monotonic_ns() - self._t0) // 1000
        else:  # MicroPython: ticks_us wraps, so accumulate wrap-safe deltas
            self._last = time.ticks_us()
            self._acc = 0
            self._now = self._ticks

    def _ticks(self):
        n = time.ticks_us()
        self._acc += time.ticks_diff(n, self._last)
        self._last = n
        return self._acc

    def now_us(self):
        return self._now() + self.offset

    def fast_forward(self, us):
        self.offset += int(us)
