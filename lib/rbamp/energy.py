"""Per-channel energy in integers (rbamp-protocol.md §7.1): never a float accumulator.

Each step adds power (integer mW) x time (integer ms); the totals are kept as whole µWh
plus an exact remainder, so no rounding is lost however small or many the steps are.
A float is 32-bit on ESP32/RP2 (0.06 Wh steps at 1 MWh); host tests would hide that.
"""

_MWMS_PER_UWH = 3600  # 1 µWh = 1 mW x 3600 ms


class Energy:
    """`wh(ch)` import, `export_wh(ch)` export, `reset(ch)`. Example:

        dev.read_period_snapshot(); print(dev.energy.wh(0))
    """

    def __init__(self, channels=3):
        self.channels = channels
        self._imp = [0] * channels   # µWh
        self._exp = [0] * channels
        self._ri = [0] * channels    # remainders in mW*ms (< 3600)
        self._re = [0] * channels

    def _check(self, ch):
        if not 0 <= ch < self.channels:
            raise IndexError("channel %d (0..%d)" % (ch, self.channels - 1))

    def add(self, ch, mw, ms):
        """Add mw (signed integer milliwatts) during ms milliseconds: > 0 import, < 0 export."""
        self._check(ch)
        if ms <= 0 or mw == 0:
            return
        if mw > 0:
            q, self._ri[ch] = divmod(self._ri[ch] + mw * ms, _MWMS_PER_UWH)
            self._imp[ch] += q
        else:
            q, self._re[ch] = divmod(self._re[ch] - mw * ms, _MWMS_PER_UWH)
            self._exp[ch] += q

    def uwh(self, ch):
        self._check(ch)
        return self._imp[ch]

    def export_uwh(self, ch):
        self._check(ch)
        return self._exp[ch]

    def wh(self, ch):
        return self.uwh(ch) / 1000000

    def export_wh(self, ch):
        return self.export_uwh(ch) / 1000000

    def reset(self, ch=None):
        for c in range(self.channels) if ch is None else (ch,):
            self._check(c)
            self._imp[c] = self._exp[c] = self._ri[c] = self._re[c] = 0

    def seed(self, ch, import_uwh, export_uwh=0):
        """Start from known totals (restored from flash, or migrated from another meter)."""
        self._check(ch)
        if import_uwh < 0 or export_uwh < 0:
            raise ValueError("energy totals cannot be negative")
        self._imp[ch], self._exp[ch] = int(import_uwh), int(export_uwh)
        self._ri[ch] = self._re[ch] = 0


def to_mw(watts):
    """Round a power in W (float) to integer mW."""
    return int(watts * 1000 + (0.5 if watts >= 0 else -0.5))
