# machine.Pin for the unix port: DRDY lines come from the bench as falling edges.
# A reader thread receives the edges and hands them to the VM with micropython.schedule(),
# so the handler runs between bytecodes like a soft IRQ. For hard=True the handler runs
# under heap_lock(), so an ISR that allocates fails here as it would on the chip.
import _thread

import micropython

import _bench


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
        self.edges = 0    # edges received from the bench
        self.missed = 0   # edges lost because the schedule queue was full

    def init(self, mode=-1, pull=-1, *, value=None):
        if value is not None:
            self._out = value

    def value(self, v=None):
        if v is not None:
            self._out = v
            return None
        if self.mode in (self.IN, -1) and _bench.address():
            return _bench.ctl("pin_level", pin=self.id)["level"]
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
            self._sock = _bench.connect(b"PIN %d\n" % self.id)
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
            try:
                micropython.schedule(self._cb, self)
            except RuntimeError:
                self.missed += 1

    def _dispatch(self, pin):
        h = self._handler
        if h is None:
            return
        if self._hard:
            micropython.heap_lock()
            try:
                h(pin)
            finally:
                micropython.heap_unlock()
        else:
            h(pin)
