# machine.Pin for the unix port: DRDY lines come from the simulator as falling edges.
# A reader thread receives the edges. A soft IRQ (hard=False) is handed to the VM with
# micropython.schedule() and runs between bytecodes, as on a chip. A hard IRQ runs at once
# on the reader thread (this port has no GIL): like an ISR it preempts the main program,
# even inside a blocking call, so a timestamp it takes is the edge's time. It runs under
# heap_lock() (per thread), so an ISR that allocates fails here as it would on the chip,
# and machine.disable_irq() holds it off.
import sys
import _thread

import micropython

import _sim

_mask = _thread.allocate_lock()   # held while IRQs are disabled or a hard handler runs
_masked = [False]


def disable_irq():
    """Hold hard handlers off until enable_irq(); returns the state to pass to it."""
    if _masked[0]:
        return 0
    _mask.acquire()
    _masked[0] = True
    return 1


def enable_irq(state=1):
    if state and _masked[0]:
        _masked[0] = False
        _mask.release()


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = id
        self.mode = mode
        self._out = 1 if value is None else value
        self._handler = None
        self._hard = False
        self._cb = self._dispatch  # bound once: scheduling must not allocate
        self._sock = None
        self.edges = 0    # edges received from the simulator
        self.missed = 0   # edges lost because the schedule queue was full

    def init(self, mode=-1, pull=-1, *, value=None):
        if value is not None:
            self._out = value

    def value(self, v=None):
        if v is not None:
            self._out = v
            return None
        if self.mode in (self.IN, -1) and _sim.address():
            return _sim.ctl("pin_level", pin=self.id)["level"]
        return self._out

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self._out = 1

    def off(self):
        self._out = 0

    def irq(self, handler=None, trigger=IRQ_FALLING, *, hard=False, priority=1, wake=None):
        self._handler = handler if trigger & self.IRQ_FALLING else None
        self._hard = hard
        if self._handler is not None and self._sock is None:
            self._sock = _sim.connect(b"PIN %d\n" % self.id)
            _thread.start_new_thread(self._reader, ())
        return self

    def _reader(self):
        buf = bytearray(1)
        s = self._sock
        while True:
            try:
                if not s.readinto(buf):
                    return
            except OSError:
                return
            self.edges += 1
            if self._handler is None:
                continue
            if self._hard:
                self._isr()
                continue
            try:
                micropython.schedule(self._cb, self)
            except RuntimeError:
                self.missed += 1

    def _isr(self):
        h = self._handler
        err = None
        with _mask:
            micropython.heap_lock()
            try:
                h(self)
            except Exception as e:   # noqa: BLE001  (as a port reports an ISR's exception)
                err = e
            finally:
                micropython.heap_unlock()
        if err is not None:
            print("Uncaught exception in IRQ callback handler")
            sys.print_exception(err)

    def _dispatch(self, pin):
        h = self._handler
        if h is not None:
            h(pin)
