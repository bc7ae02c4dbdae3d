"""The same driver under CPython through the smbus2 adapter (Linux SBC use), against the
in-process bench. The SMBus stand-in executes smbus2's real i2c_msg objects on the simulator
bus the way the kernel's I2C_RDWR ioctl would: one combined transaction per call."""
import os
import sys

import pytest

from tools.host.sim import build
from tools.host.sim.bus import OK
from tools.host.sim.clock import RealClock

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "lib"))
from rbamp import RbAmp, RbAmpIOError, RbAmpParamError  # noqa: E402
from rbamp.smbus import SMBusI2C  # noqa: E402


class BenchSMBus:
    def __init__(self, bus):
        self.bus = bus

    def i2c_rdwr(self, *msgs):
        w = msgs[0] if msgs[0].flags == 0 else None
        r = msgs[-1] if msgs[-1].flags & 1 else None
        addr = msgs[0].addr
        status, data = self.bus.transfer(addr, bytes(w) if w else b"", len(r) if r else 0)
        if status != OK:
            raise OSError(121, "Remote I/O error")
        if r is not None:
            for i, b in enumerate(data):
                r.buf[i] = bytes([b])


@pytest.fixture
def dev():
    bus = build({"modules": [{"variant": "UI2", "channels": [{"load": 1000}, {"load": -200}]}]},
                RealClock())
    return RbAmp(SMBusI2C(BenchSMBus(bus)), 0x50).begin()


def test_cpython_driver_reads_and_meters(dev):
    assert dev.variant_name() == "UI2" and dev.channels == 2
    s = dev.read_rt()
    assert s.power[0] == pytest.approx(1000.0) and s.power[1] == pytest.approx(-200.0)
    assert dev.read_uid() == bytes((0x22, 0x50, 0x52, 0x42, 0x4D, 0x31, 0, 0, 0, 0, 0x13, 0x37))
    import time
    time.sleep(0.5)
    snap = dev.read_period_snapshot()
    assert snap.avg_power[0] == pytest.approx(1000.0)
    assert dev.energy.uwh(0) == pytest.approx(1000 * snap.dt_ms / 3.6, abs=1)


def test_param_error_is_also_a_value_error_on_cpython(dev):
    with pytest.raises(ValueError):
        dev.read_current(2)
    with pytest.raises(RbAmpParamError):
        dev.set_ct_model_ch(0, 5)
    assert issubclass(RbAmpIOError, OSError)
