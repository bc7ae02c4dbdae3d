"""Optional asyncio helper: a stream of RT snapshots, one per RT commit.

    import asyncio
    from machine import Pin
    from rbamp.aio import RtStream
    async def main(dev):
        async for snap in RtStream(dev, Pin(4, Pin.IN, Pin.PULL_UP)):
            print(snap.power[0])

With a DRDY pin the IRQ handler only sets a ThreadSafeFlag; without one it polls every
200 ms. A class with __aiter__/__anext__: MicroPython has no async generators. Reads that
fail are counted by the driver and skipped; the stream goes on.
"""
import asyncio

from ._regs import T_WINDOW as _RT_MS
from .errors import RbAmpIOError


class RtStream:
    def __init__(self, dev, drdy_pin=None, settle_ms=0):
        self.dev = dev
        self.settle_ms = settle_ms
        self.flag = None
        self.skipped = 0
        if drdy_pin is not None:
            self.flag = asyncio.ThreadSafeFlag()
            drdy_pin.irq(self._isr, drdy_pin.IRQ_FALLING, hard=True)
            self.pin = drdy_pin

    def _isr(self, _pin):
        self.flag.set()

    def close(self):
        if self.flag is not None:
            self.pin.irq(None)

    def __aiter__(self):
        return self

    async def __anext__(self):
        while True:
            if self.flag is not None:
                await self.flag.wait()
                if self.settle_ms:
                    await asyncio.sleep_ms(self.settle_ms)  # wired-OR: let all modules commit
            else:
                await asyncio.sleep_ms(_RT_MS)
            try:
                return self.dev.read_rt()
            except RbAmpIOError:
                self.skipped += 1
