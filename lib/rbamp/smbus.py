"""CPython on a Linux SBC: machine.I2C methods on top of smbus2, so the same driver runs.

    from smbus2 import SMBus
    from rbamp import RbAmp
    from rbamp.smbus import SMBusI2C
    dev = RbAmp(SMBusI2C(SMBus(1)), 0x50).begin()

Each method is one combined transaction (i2c_rdwr), like the MicroPython port's I2C.
"""


class SMBusI2C:
    def __init__(self, bus):
        from smbus2 import i2c_msg  # pyright: ignore[reportMissingImports] (CPython only)
        self.bus = bus
        self._msg = i2c_msg

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        w = self._msg.write(addr, [memaddr])
        r = self._msg.read(addr, len(buf))
        self.bus.i2c_rdwr(w, r)
        buf[:] = bytes(r)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self.bus.i2c_rdwr(self._msg.write(addr, bytes([memaddr]) + bytes(buf)))

    def writeto(self, addr, buf, stop=True):
        self.bus.i2c_rdwr(self._msg.write(addr, bytes(buf)))
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        r = self._msg.read(addr, len(buf))
        self.bus.i2c_rdwr(r)
        buf[:] = bytes(r)

    def scan(self):
        found = []
        for a in range(0x08, 0x78):
            try:
                self.readfrom_into(a, bytearray(1))
                found.append(a)
            except OSError:
                pass
        return found
