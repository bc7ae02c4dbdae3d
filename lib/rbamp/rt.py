"""The real-time block (rbamp-protocol.md §3.11): one burst, one RT commit, no allocation.

`RtSnapshot` keeps the raw 56 bytes; values are decoded when read. The plausibility check
works on the IEEE-754 bit patterns with small integers, so reading a snapshot allocates
nothing (floats are heap objects on MicroPython).
"""
import struct

# field index k of the RT block: register RT_BLOCK + 4 * k
F_U, F_UPK, F_I, F_IPK, F_P, F_PF = 0, 1, 2, 5, 8, 11


def _bits(x):
    b = struct.pack("<f", x)
    return ((b[3] & 0x7F) << 8) | b[2], (b[1] << 8) | b[0]


# Client plausibility ceilings per field (§15): beyond them a transfer was corrupted.
CEILINGS = (500.0, 750.0) + (150.0,) * 3 + (250.0,) * 3 + (30000.0,) * 3 + (1.5,) * 3
_LIMITS = [_bits(v) for v in CEILINGS]


def implausible(buf, nfields=14):
    """Index of the first field that is NaN/Inf or beyond its ceiling, or -1.
    PF may be NaN when the current is 0 (§4.4): that is 'unknown', not an error."""
    for k in range(nfields):
        o = 4 * k
        hi = ((buf[o + 3] & 0x7F) << 8) | buf[o + 2]
        if hi >= 0x7F80:  # exponent all ones: NaN or Inf
            if k >= F_PF and hi > 0x7F80:
                continue
            return k
        lim_hi, lim_lo = _LIMITS[k]
        if hi > lim_hi or (hi == lim_hi and ((buf[o + 1] << 8) | buf[o]) > lim_lo):
            return k
    return -1


class _Field:
    """snap.current[ch] style access to one per-channel field."""

    def __init__(self, snap, base):
        self._s = snap
        self._base = base

    def __getitem__(self, ch):
        if not 0 <= ch < self._s.channels:
            raise IndexError("channel %d not on this module (0..%d)" % (ch, self._s.channels - 1))
        return self._s.field(self._base + ch)

    def __len__(self):
        return self._s.channels


class RtSnapshot:
    """U, U_peak, I[n], I_peak[n], P[n], PF[n] of one RT commit. Reused: read_rt(snap)."""

    def __init__(self, channels=3):
        self.buf = bytearray(56)
        self.channels = channels
        self.reads = 0  # successful reads into this snapshot
        self.current = _Field(self, F_I)
        self.current_peak = _Field(self, F_IPK)
        self.power = _Field(self, F_P)
        self.power_factor = _Field(self, F_PF)

    def field(self, k):
        return struct.unpack_from("<f", self.buf, 4 * k)[0]

    @property
    def voltage(self):
        return self.field(F_U)

    @property
    def voltage_peak(self):
        return self.field(F_UPK)

    def apparent_power(self, ch):
        """S = U_rms * I_rms, computed on the master (the module does not provide it)."""
        return self.voltage * self.current[ch]

    def as_dict(self):
        n = range(self.channels)
        return {"voltage": self.voltage, "voltage_peak": self.voltage_peak,
                "current": [self.current[c] for c in n],
                "current_peak": [self.current_peak[c] for c in n],
                "power": [self.power[c] for c in n],
                "power_factor": [self.power_factor[c] for c in n]}
