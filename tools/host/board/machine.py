# Host board `machine` for the MicroPython unix port: shadows the built-in module (keep
# .frozen on MICROPYPATH) and adds what the firmware and mqtt_as use, backed by the
# rbAmp simulator (tools/host/sim). See tools/host/board/README.md.
from umachine import *  # noqa: F401,F403  (mem8, idle, time_pulse_us, Signal, ...)

import _board
from _board import (DEEPSLEEP_RESET, EXT0_WAKE, EXT1_WAKE, HARD_RESET, PIN_WAKE,  # noqa
                    PWRON_RESET, RTC, SOFT_RESET, TIMER_WAKE, WDT, WDT_RESET, deepsleep,
                    lightsleep, reset, reset_cause, soft_reset, unique_id, wake_reason)

if _board.port() == "rp2":      # as the rp2 port: two reset causes, and mem_backup
    from _board import mem_backup  # noqa: F401
    del DEEPSLEEP_RESET, HARD_RESET, SOFT_RESET
from _sim import attach as attach_sim  # noqa: F401  (host only: in-process simulator)
from _i2c import I2C, SoftI2C  # noqa: F401
from _pin import Pin, disable_irq, enable_irq  # noqa: F401

_freq = 160000000


def freq(hz=None):
    global _freq
    if hz is None:
        return _freq
    _freq = hz

