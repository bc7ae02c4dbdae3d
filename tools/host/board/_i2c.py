# machine.I2C / SoftI2C for the unix port, backed by the virtual bench.
# The hot path (readfrom_mem_into, writeto_mem of a few bytes) allocates nothing, so the
# driver's zero-allocation claim can be checked with micropython.heap_lock() on the host.
import struct

import _sim

_FRAME = 5
_MAXW = 64


class I2C:
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        self.id = id
        self.freq = freq
        self._req = bytearray(_FRAME + _MAXW)   # sent as write(buf, n): no view to allocate
        self._rsp = bytearray(3)
        self._npending = -1
        self._bus = _sim.inproc()
        self._sock = None
        if self._bus is None:
            self._sock = _sim.connect(b"I2C\n")
            struct.pack_into("<BBBHI", self._req, 0, 2, 0, 4, 0, freq)
            self._sock.write(self._req, _FRAME + 4)
            _sim.read_exact(self._sock, self._rsp)
        else:
            self._bus.freq = freq

    def init(self, *args, freq=None, **kw):
        if freq:
            self.freq = freq

    def deinit(self):
        if self._sock:
            self._sock.close()
            self._sock = None

    # ---- one transaction ------------------------------------------------------------
    def _xfer(self, addr, wlen, rbuf):
        """Send self._req[5:5+wlen] then read len(rbuf) bytes into rbuf; raise on failure.
        On failure rbuf holds whatever the simulator says a failed read leaves (ESP32 §2.8)."""
        rlen = 0 if rbuf is None else len(rbuf)
        if self._bus is not None:
            return self._xfer_inproc(addr, wlen, rbuf, rlen)
        q = self._req
        q[0] = 1
        q[1] = addr
        q[2] = wlen
        q[3] = rlen & 0xFF
        q[4] = rlen >> 8
        s = self._sock
        s.write(q, _FRAME + wlen)
        _sim.read_exact(s, self._rsp)
        status = self._rsp[0]
        n = self._rsp[1] | (self._rsp[2] << 8)
        if n:
            _sim.read_exact(s, rbuf)
        if status:
            raise OSError(_sim.STATUS_ERRNO[status])
        return wlen

    def _xfer_inproc(self, addr, wlen, rbuf, rlen):
        status, data = self._bus.transfer(addr, bytes(self._req[_FRAME:_FRAME + wlen]), rlen)
        if data:
            rbuf[:] = data
        if status:
            raise OSError(_sim.STATUS_ERRNO[status])
        return wlen

    def _load(self, memaddr, buf):
        q = self._req
        o = _FRAME
        if memaddr is not None:
            q[o] = memaddr
            o += 1
        n = len(buf) if buf is not None else 0
        if o - _FRAME + n > _MAXW:
            raise ValueError("I2C write longer than %d bytes" % _MAXW)
        for i in range(n):
            q[o + i] = buf[i]
        return o - _FRAME + n

    # ---- machine.I2C API ------------------------------------------------------------
    def scan(self):
        found = []
        for a in range(0x08, 0x78):
            try:
                self._xfer(a, 0, None)
                found.append(a)
            except OSError:
                pass
        return found

    def writeto(self, addr, buf, stop=True):
        if not stop:  # held for a repeated-start read that follows
            self._npending = self._load(None, buf)
            return len(buf)
        self._npending = -1
        self._xfer(addr, self._load(None, buf), None)
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        data = b"".join(bytes(v) for v in vector)
        return self.writeto(addr, data, stop)

    def readfrom_into(self, addr, buf, stop=True):
        w = self._npending if self._npending > 0 else 0
        self._npending = -1
        self._xfer(addr, w, buf)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf, stop)
        return bytes(buf)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        self._req[_FRAME] = memaddr
        self._xfer(addr, 1, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._xfer(addr, self._load(memaddr, buf), None)


class SoftI2C(I2C):
    def __init__(self, scl=None, sda=None, *, freq=400000, timeout=50000):
        super().__init__(-1, scl=scl, sda=sda, freq=freq, timeout=timeout)
