"""Load profiles for the virtual bench: what the mains and each CT 'sees'.

Every profile is piecewise constant in world time (microseconds), so the module's 200 ms
windows and the ground-truth integral integrate exactly the same function and the simulator's
truth is exact. `value(t)` is the power in W at t (signed: > 0 import, < 0 export, §4.3);
`next_change(t)` is the next breakpoint after t (or None).
Runs under CPython and MicroPython (no dataclasses, no typing).
"""
import math

_S = 1000000  # microseconds per second


def _hash01(seed, n):
    # Stateless 32-bit mix -> [0, 1): the same (seed, n) always gives the same value, so
    # truth and module can query the same noise cell independently and in any order.
    h = (n * 2654435761 + seed * 40503 + 0x9E3779B9) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x45D9F3B) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x45D9F3B) & 0xFFFFFFFF
    h ^= h >> 16
    return h / 4294967296.0


class Constant:
    def __init__(self, w):
        self.w = float(w)

    def value(self, t):
        return self.w

    def next_change(self, t):
        return None


class Steps:
    """Explicit schedule: points [(t_s, w), ...]; optional repeat period in seconds."""

    def __init__(self, points, repeat_s=None, start_us=0):
        self.pts = sorted((int(p[0] * _S), float(p[1])) for p in points)
        self.rep = int(repeat_s * _S) if repeat_s else 0
        self.start = start_us

    def _local(self, t):
        t -= self.start
        if self.rep and t >= 0:
            return t % self.rep, t - t % self.rep
        return t, 0

    def value(self, t):
        lt, _ = self._local(t)
        w = 0.0
        for pt, pw in self.pts:
            if pt <= lt:
                w = pw
        return w

    def next_change(self, t):
        lt, base = self._local(t)
        for pt, _ in self.pts:
            if pt > lt:
                return self.start + base + pt
        if self.rep:
            return self.start + base + self.rep + (self.pts[0][0] if self.pts else 0)
        return None


class Appliance:
    """An appliance cycling on/off (kettle, fridge, heat pump); jitter varies the on-time."""

    def __init__(self, w, on_s, off_s, seed=1, jitter=0.3):
        self.w = float(w)
        self.per = int((on_s + off_s) * _S)
        self.on = int(on_s * _S)
        self.seed = seed
        self.jit = jitter
        self.phase = int(_hash01(seed, 7) * self.per)

    def _cycle(self, t):
        k = (t - self.phase) // self.per
        start = self.phase + k * self.per
        on = int(self.on * (1.0 + self.jit * (_hash01(self.seed, k) - 0.5)))
        on = max(1, min(on, self.per - 1))
        return start, on

    def value(self, t):
        start, on = self._cycle(t)
        return self.w if t < start + on else 0.0

    def next_change(self, t):
        start, on = self._cycle(t)
        return start + on if t < start + on else start + self.per


class Solar:
    """PV export: -peak * max(0, sin(2*pi*t/day)), held constant over step_s cells."""

    def __init__(self, peak_w, day_s=600.0, step_s=1.0, start_us=0):
        self.peak = float(peak_w)
        self.day = day_s
        self.step = int(step_s * _S)
        self.start = start_us

    def value(self, t):
        cell = (t - self.start) // self.step
        mid = (cell * self.step + self.step // 2) / _S
        return -self.peak * max(0.0, math.sin(2.0 * math.pi * mid / self.day))

    def next_change(self, t):
        return self.start + ((t - self.start) // self.step + 1) * self.step


class Noise:
    """Zero-mean load fluctuation (approx. Gaussian, sigma in W) over fixed cells."""

    def __init__(self, sigma_w, cell_ms=100, seed=3):
        self.sigma = float(sigma_w)
        self.cell = int(cell_ms * 1000)
        self.seed = seed

    def value(self, t):
        n = t // self.cell
        s = _hash01(self.seed, 4 * n) + _hash01(self.seed, 4 * n + 1)
        s += _hash01(self.seed, 4 * n + 2) + _hash01(self.seed, 4 * n + 3)
        return (s - 2.0) * 1.7320508 * self.sigma

    def next_change(self, t):
        return (t // self.cell + 1) * self.cell


class Sum:
    def __init__(self, parts):
        self.parts = list(parts)

    def value(self, t):
        w = 0.0
        for p in self.parts:
            w += p.value(t)
        return w

    def next_change(self, t):
        best = None
        for p in self.parts:
            c = p.next_change(t)
            if c is not None and (best is None or c < best):
                best = c
        return best


class Switch:
    """`before` until world time `at`, then `after`: a load changed while a window was open.
    The module integrates that window at its commit, later than the change, so the window
    must still see the old load up to the change, as the ground truth did."""

    def __init__(self, before, after, at):
        self.before = before
        self.after = after
        self.at = at

    def value(self, t):
        return (self.before if t < self.at else self.after).value(t)

    def next_change(self, t):
        if t >= self.at:
            return self.after.next_change(t)
        c = self.before.next_change(t)
        return self.at if c is None or c > self.at else c


class Channel:
    """One CT input: a power profile plus a power factor (magnitude) and its sign of Q."""

    def __init__(self, profile=None, pf=1.0, capacitive=False):
        self.profile = profile if profile is not None else Constant(0.0)
        self.pf = min(1.0, max(0.01, float(pf)))
        self.qsign = -1.0 if capacitive else 1.0

    def integrate(self, t0, t1):
        """Exact integrals over [t0, t1) in W*us: (net, import, export)."""
        net = imp = exp = 0.0
        t = t0
        prof = self.profile
        while t < t1:
            nc = prof.next_change(t)
            seg_end = t1 if nc is None or nc > t1 else nc
            if seg_end <= t:
                seg_end = t1
            w = prof.value(t)
            d = seg_end - t
            net += w * d
            if w > 0:
                imp += w * d
            else:
                exp -= w * d
            t = seg_end
        return net, imp, exp

    def reactive(self, p):
        if p == 0.0 or self.pf >= 1.0:
            return 0.0
        return self.qsign * abs(p) * math.tan(math.acos(self.pf))


class Mains:
    """Mains voltage and frequency shared by the modules on one installation."""

    def __init__(self, volts=230.0, hz=50.0, sag=None):
        self.volts = float(volts)
        self.hz = float(hz)
        self.sag = sag  # optional profile of volts added to the nominal value

    def voltage(self, t):
        return self.volts + (self.sag.value(t) if self.sag else 0.0)


def profile_from_spec(spec):
    """Build a profile from JSON: a number, a dict with "type", or a list (summed)."""
    if isinstance(spec, (int, float)):
        return Constant(spec)
    if isinstance(spec, list):
        return Sum([profile_from_spec(s) for s in spec])
    if not isinstance(spec, dict):
        raise ValueError("load spec must be a number, list or object, got %r" % (spec,))
    kind = spec.get("type", "constant")
    args = dict(spec)
    args.pop("type", None)
    cls = _KINDS.get(kind)
    if cls is None:
        raise ValueError("unknown load type %r (one of %s)" % (kind, sorted(_KINDS)))
    return cls(**args)


_KINDS = {"constant": Constant, "steps": Steps, "appliance": Appliance, "solar": Solar,
          "noise": Noise}


def channel_from_spec(spec):
    """{"load": <profile spec>, "pf": 0.9, "capacitive": false} or a bare profile spec."""
    if isinstance(spec, dict) and "load" in spec:
        return Channel(profile_from_spec(spec["load"]), spec.get("pf", 1.0),
                       spec.get("capacitive", False))
    return Channel(profile_from_spec(spec))
