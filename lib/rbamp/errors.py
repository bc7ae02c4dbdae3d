"""Exceptions of the rbAmp driver. Device faults are OSError subclasses, so code that
catches OSError around I/O keeps working; bad arguments are RbAmpParamError."""
from . import _regs as R


class RbAmpError(OSError):
    """Root of every rbAmp error."""


class RbAmpIOError(RbAmpError):
    """A transaction failed after every retry (NACK, bus error, implausible value)."""


class RbAmpTimeoutError(RbAmpError):
    """The module did not become ready / answer within the allowed time."""


class RbAmpNotReadyError(RbAmpError):
    """The module answers but has no valid measurement yet (STATUS.READY = 0)."""


class RbAmpStaleError(RbAmpError):
    """A period latch was empty (PERIOD_VALID = 0): the anchor was kept, nothing counted."""


class RbAmpModeError(RbAmpError):
    """The module refused an operation (REG_ERROR = ERR_PARAM) or lacks the capability."""


class RbAmpVersionError(RbAmpError):
    """Not an rbAmp sensor, or firmware this driver cannot use."""


try:  # CPython: a parameter error is also a ValueError. MicroPython cannot combine
    class RbAmpParamError(RbAmpError, ValueError):  # OSError and ValueError bases.
        """An argument out of range (channel, code, address, label)."""
except TypeError:
    class RbAmpParamError(RbAmpError):
        """An argument out of range (channel, code, address, label)."""


class RbAmpSensorClass:
    """SENSOR_CLASS codes (rbamp-protocol.md §9.1)."""
    UNSET = 0
    SCT_013 = 1
    WIRED_CT = 2      # reserved on shipping SKUs
    BUILTIN_CT = 3    # reserved on shipping SKUs


class RbAmpEvent:
    """EVENT_FLAGS / EVENT_MASK bits (rbamp-protocol.md §10): read_event_flags(),
    clear_event_flags(), set_event_mask()."""
    PERIOD_READY = R.EV_PERIOD_READY
    THRESH_I = R.EV_THRESH_I
    THRESH_P = R.EV_THRESH_P      # power above the threshold (holds DRDY LOW when masked)
    ERROR = R.EV_ERROR            # a write was refused (durable; REG_ERROR says why)
    RESET = R.EV_RESET            # set by every module boot until cleared
