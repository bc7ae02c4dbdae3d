# lib/rbamp/commissioning.py against the simulator.
# sim: tools/host/sim/scenarios/commission.json
# timeout: 120
import time

import _sim
import machine
from mptest import eq, near, raises, run

from rbamp import RbAmp, RbAmpModeError, RbAmpParamError, RbAmpSensorClass

i2c = machine.I2C(0, freq=50000)


def flash_writes(name):
    return [m for m in _sim.ctl("modules")["modules"] if m["name"] == name][0]["flash_writes"]


def test_virgin_module_class_first_then_one_save():
    d = RbAmp(i2c, 0x50).begin(prime=False)
    eq(d.read_last_error(), 0xFB)                       # normal on a virgin module (§9.4)
    eq(d.read_sensor_class(), 0)
    e = raises(RbAmpModeError, d.set_ct_model_ch, 0, 3)
    if "class" not in str(e):
        raise AssertionError(str(e))
    eq(d.read_current(0), 0.0)                          # no CT bound: no current
    w0 = flash_writes("fresh")
    # no CT setter touches the class: on UNSET they refuse, before writing anything
    for call in (lambda: d.set_ct_model(3), lambda: d.configure_channels([3, 6])):
        e = raises(RbAmpModeError, call)
        if "set_sensor_class" not in str(e):
            raise AssertionError(str(e))
    eq(d.read_sensor_class(), 0)
    eq(flash_writes("fresh") - w0, 0)
    eq(d.configure_channels([3, 6], sensor_class=RbAmpSensorClass.SCT_013), True)
    eq(flash_writes("fresh") - w0, 1)                   # one flash cycle for the whole set
    eq([d.read_ct_model_ch(c) for c in range(2)], [3, 6])
    eq(d.read_last_error(), 0x00)                       # the save cleared 0xFB
    time.sleep_ms(250)
    near(d.read_current(0), 10.0, 0.01)
    near(d.read_current(1), 2.0, 0.01)
    eq(d.configure_channels([3, 6]), False)             # read-compare-write: nothing to do
    eq(flash_writes("fresh") - w0, 1)


def test_ct_codes_by_firmware_and_channel_checks():
    d = RbAmp(i2c, 0x53).begin(prime=False)
    for bad in (0, 5, 7, 8):
        raises(RbAmpParamError, d.set_ct_model_ch, 0, bad)   # v1.3: {1,2,3,4,6}
    raises(RbAmpParamError, d.set_ct_model_ch, 3, 3)
    raises(RbAmpParamError, d.configure_channels, [3, 3, 3, 3])
    eq(d.set_ct_model_ch(2, 6), True)
    eq(d.read_ct_model_ch(2), 6)
    old = RbAmp(i2c, 0x55, variant="UI1").begin(prime=False)
    eq(old.set_ct_model_ch(0, 5), True)                  # v1.2 still accepts 5
    raises(RbAmpParamError, old.set_ct_model_ch, 0, 6)


def test_set_ct_model_keeps_the_modules_sensor_class():
    """It used to set SCT_013 first: on a module of another class it rewrote and saved the
    class. Now the class stays, and the module's own refusal is the answer."""
    d = RbAmp(i2c, 0x53).begin(prime=False)
    d.set_sensor_class(RbAmpSensorClass.WIRED_CT)
    raises(RbAmpModeError, d.set_ct_model, 3)            # the module refuses the bind
    eq(d.read_sensor_class(), RbAmpSensorClass.WIRED_CT)
    eq(d.configure_channels([3], sensor_class=RbAmpSensorClass.SCT_013), True)
    eq(d.read_sensor_class(), RbAmpSensorClass.SCT_013)
    eq(d.read_ct_model_ch(0), 3)


def test_label_rules():
    d = RbAmp(i2c, 0x53).begin(prime=False)
    w0 = flash_writes("cfg")
    eq(d.set_label("attic"), True)
    eq(d.read_label(), "attic")
    eq(d.set_label("attic"), False)
    eq(flash_writes("cfg") - w0, 1)
    raises(RbAmpParamError, d.set_label, "too-long-label")
    raises(RbAmpParamError, d.set_label, "caf\u00e9")


def test_address_change_survives_a_slow_prepare():
    d = RbAmp(i2c, 0x53).begin()
    raises(RbAmpParamError, d.prepare_address_change, 0x53)
    raises(RbAmpParamError, d.prepare_address_change, 0x78)
    raises(RbAmpParamError, d.commit_address_change)
    d.prepare_address_change(0x60)
    time.sleep_ms(5200)   # longer than the 5 s arming window: commit arms right before use
    eq(d.commit_address_change(), 0x60)
    eq(d.addr, 0x60)
    eq(0x53 in i2c.scan(), False)
    eq(d.read_label(), "attic")
    time.sleep_ms(400)
    snap = d.read_period_snapshot()                      # metering goes on at the new address
    near(snap.avg_power[0], 230.0, 0.01)


def test_arming_expires_after_five_seconds():
    d = RbAmp(i2c, 0x60).begin(prime=False)
    d.prepare_address_change(0x61)
    d.io.write_u8(0x31, 0xA5)
    time.sleep_ms(5100)
    raises(RbAmpModeError, d._command, 0x30, 700, "COMMIT_ADDR")
    d.reset()                                            # the staged address is dropped
    eq(d.io.read_u8(0x30), 0x60)


def test_factory_reset_only_in_develop_mode_and_errors_clear():
    d = RbAmp(i2c, 0x53 if 0x53 in i2c.scan() else 0x60).begin(prime=False)
    raises(RbAmpModeError, d.factory_reset)
    d.io.write_u8(0x29, 0xF0)                            # reserved digest bits: refused
    eq((d.read_last_error(), d.has_error()), (0xFE, True))
    d.clear_error()
    eq((d.read_last_error(), d.has_error()), (0, False))
    dev = RbAmp(i2c, 0x54).begin(prime=False)
    eq(dev.read_label(), "bench")
    _sim.ctl("module_fault", module="fresh", action="unplug")   # 0x50 must be free
    dev.factory_reset()                                  # develop mode: erases user config
    eq((dev.addr, dev.read_last_error(), dev.read_label()), (0x50, 0xFB, ""))
    eq(0x54 in i2c.scan(), False)


run(globals())
