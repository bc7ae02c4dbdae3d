"""rbamp: MicroPython driver for rbAmp AC energy-meter modules (protocol v1.0-v1.3).

    from machine import I2C
    from rbamp import RbAmp
    dev = RbAmp(I2C(0, freq=50000), 0x50).begin()
    snap = dev.read_rt()                 # one burst, no allocation
    print(snap.voltage, snap.power[0])
"""
from ._regs import T_LATCH as LATCH_MS  # noqa: F401 - a latch's snapshot is ready after this
from ._regs import T_WINDOW as RT_WINDOW_MS  # noqa: F401 - one RT window (§6)
from .commissioning import CT_CODES, CT_RATINGS  # noqa: F401 - CT model code <-> rated A (§9.1)
from .device import VARIANTS, RbAmp  # noqa: F401
from .errors import (RbAmpError, RbAmpEvent, RbAmpIOError, RbAmpModeError,  # noqa: F401
                     RbAmpNotReadyError, RbAmpParamError, RbAmpSensorClass, RbAmpStaleError,
                     RbAmpTimeoutError, RbAmpVersionError)
from .fleet import Fleet, broadcast_latch  # noqa: F401
from .rt import RtSnapshot  # noqa: F401

__version__ = "0.1.0"
