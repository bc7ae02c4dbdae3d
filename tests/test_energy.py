"""rbamp.energy: integer accounting that never loses a remainder (CPython)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "lib"))
from rbamp.energy import Energy, to_mw  # noqa: E402


def test_small_steps_lose_nothing():
    e = Energy(1)
    for _ in range(3600):          # 1 mW for 1 ms, 3600 times = exactly 1 µWh
        e.add(0, 1, 1)
    assert e.uwh(0) == 1
    for _ in range(86400 * 5):     # 5 days of 1 s steps at 2.5 W
        e.add(0, 2500, 1000)
    assert e.uwh(0) == 1 + 2500 * 1000 * 86400 * 5 // 3600


def test_import_export_split_and_reset():
    e = Energy(2)
    e.add(0, 1000, 3600)           # 1 mWh import
    e.add(0, -500, 7200)           # 1 mWh export
    e.add(1, 0, 1000)
    e.add(1, 1000, -5)             # negative time is ignored
    assert (e.uwh(0), e.export_uwh(0), e.uwh(1)) == (1000, 1000, 0)
    assert e.wh(0) == pytest.approx(0.001) and e.export_wh(0) == pytest.approx(0.001)
    e.reset(0)
    assert e.uwh(0) == e.export_uwh(0) == 0
    with pytest.raises(IndexError):
        e.add(2, 1, 1)


def test_large_totals_stay_exact():
    e = Energy(1)
    e.seed(0, 10 ** 15)            # 1 GWh in µWh
    e.add(0, 23000000, 3600000)    # 23 kW for an hour
    assert e.uwh(0) == 10 ** 15 + 23 * 10 ** 9
    with pytest.raises(ValueError):
        e.seed(0, -1)


def test_to_mw_rounds_half_away_from_zero():
    assert (to_mw(1.0004), to_mw(1.0005), to_mw(-1.0005), to_mw(0.0)) == (1000, 1001, -1001, 0)
