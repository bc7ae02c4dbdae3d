"""Energy from real-time power on the node: integer, no float, no allocation per sample.

A float is a heap object on MicroPython, and on the 32-bit ports an integer above 2**30
is one too. So power is decoded from the raw f32 bytes of the RT block straight to integer
mW, and energy (mW x ms) is kept in three small-integer limbs (base 2**12 and 2**20) per
accumulator. Converting to µWh (`take_uwh`) is done outside the hot path.
"""

GAP_MS = 2000   # a longer silence is not bridged: the power of that time is unknown


def f32_mw(buf, o):
    """The IEEE-754 float32 at buf[o:o+4] (little endian, in W) as rounded integer mW.
    Callers have checked it is finite and |x| <= 30 kW (rt.implausible)."""
    b3 = buf[o + 3]
    b2 = buf[o + 2]
    e = ((b3 & 0x7F) << 1) | (b2 >> 7)
    s = e - 146                      # x * 1000 = (m >> 1) * 125 * 2**(e - 146), m < 2**24
    if s < -30:
        return 0                     # |x| < 0.5 mW (and zero, and denormals)
    v = ((((b2 & 0x7F) << 16) | (buf[o + 1] << 8) | buf[o] | 0x800000) >> 1) * 125
    if s >= 0:
        v <<= s
    else:
        v = (v + (1 << (-s - 1))) >> -s
    return -v if b3 & 0x80 else v


class Accumulators:
    """n accumulators of mW x ms, each three limbs in one preallocated list."""

    def __init__(self, n):
        self.a = [0] * (3 * n)

    def add(self, k, mw, ms):
        """Add mw (0..3e7) during ms (0..2047). Small integers only."""
        a = self.a
        i = 3 * k
        lo = a[i] + (mw & 4095) * ms
        mid = a[i + 1] + (mw >> 12) * ms + (lo >> 12)
        a[i] = lo & 4095
        a[i + 2] += mid >> 20
        a[i + 1] = mid & 0xFFFFF

    def take_uwh(self, k):
        """Whole µWh accumulated so far; the remainder (< 1 µWh) stays."""
        a = self.a
        i = 3 * k
        total = (((a[i + 2] << 20) + a[i + 1]) << 12) + a[i]
        q, r = divmod(total, 3600)
        a[i], a[i + 1], a[i + 2] = r, 0, 0
        return q

    def peek_uwh(self, k):
        a = self.a
        i = 3 * k
        return ((((a[i + 2] << 20) + a[i + 1]) << 12) + a[i]) // 3600


def kwh(uwh):
    """Integer µWh as kWh text with 6 decimals (exact: floats are 32-bit on the chips)."""
    mwh = uwh // 1000
    return "%d.%06d" % (mwh // 1000000, mwh % 1000000)


def parse_kwh_uwh(v):
    """A kWh number from JSON -> µWh, or None. Text keeps every digit (no float)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    s = v if isinstance(v, str) else ("%.6f" % v if isinstance(v, float) else str(v))
    whole, _, frac = s.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        return None
    return int(whole) * 10**9 + int((frac + "000000000")[:9])
