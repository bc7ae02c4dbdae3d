# Host board shims (tools/host/board) against a real simulator.
# sim: default
import struct
import time

import _sim
import machine
import micropython
import network
from mptest import eq, near, raises, run

i2c = machine.I2C(0, freq=50000)
buf = bytearray(56)


def wait_ready(addr, ms=1000):
    """Modules power up with the simulator: READY (STATUS bit0) comes with the first commit."""
    t0 = time.ticks_ms()
    while not i2c.readfrom_mem(addr, 0x00, 1)[0] & 1:
        if time.ticks_diff(time.ticks_ms(), t0) > ms:
            raise AssertionError("0x%02x not ready after %d ms" % (addr, ms))
        time.sleep_ms(10)


def first_answer(addr, ms=1000):
    """A module NACKs its address for about 10 ms after power-on (rbamp-protocol.md §6.2):
    a test started that early sees ENODEV first, however fast or slow the machine is."""
    t0 = time.ticks_ms()
    while True:
        try:
            return i2c.readfrom_mem(addr, 0x00, 1)[0]
        except OSError as e:
            if e.args[0] != 19 or time.ticks_diff(time.ticks_ms(), t0) > ms:
                raise
            time.sleep_ms(2)


def test_modules_not_ready_until_first_commit():
    st = first_answer(0x50)
    if not st & 1:  # still booting: READY 0 and REG_ERROR NOT_READY (§6.2)
        eq(i2c.readfrom_mem(0x50, 0x02, 1), b"\xfc")
    for a in (0x50, 0x51, 0x52):
        wait_ready(a)
    eq(i2c.readfrom_mem(0x50, 0x02, 1), b"\x00")
    eq(i2c.readfrom_mem(0x50, 0x2A, 1)[0] & 0x20, 0x20)  # RESET_OCCURRED after boot


def test_scan_finds_the_default_modules():
    eq(i2c.scan(), [0x50, 0x51, 0x52])


def test_identity_and_rt_burst():
    eq(i2c.readfrom_mem(0x51, 0x54, 2), b"\x01\x02")  # rbAmp, UI2
    eq(i2c.readfrom_mem(0x52, 0x57, 2), b"\x9e\x06")  # I3: no voltage (CAPABILITY bit 8 = 0)
    i2c.readfrom_mem_into(0x50, 0x86, buf)
    u, upk = struct.unpack_from("<ff", buf)
    near(u, 230.0, 0.01)
    near(upk, 230.0 * 1.41421, 0.01)


def test_repeated_start_write_then_read():
    i2c.writeto(0x50, b"\x55", False)
    out = bytearray(1)
    i2c.readfrom_into(0x50, out)
    eq(out[0], 1)  # UI1


def test_address_nack_raises_enodev():
    e = raises(OSError, i2c.readfrom_mem, 0x33, 0x00, 1)
    eq(e.args[0], 19)


def test_write_then_read_back_a_register():
    i2c.writeto_mem(0x50, 0x2B, b"\x00")  # EVENT_MASK = 0
    i2c.writeto_mem(0x50, 0x28, b"\x07")  # GROUP_ID
    eq(i2c.readfrom_mem(0x50, 0x28, 1), b"\x07")
    eq(i2c.readfrom_mem(0x50, 0x02, 1), b"\x00")


def _hot():
    for _ in range(200):
        i2c.readfrom_mem_into(0x50, 0x86, buf)


def test_hot_path_allocates_nothing():
    _hot()
    micropython.heap_lock()
    try:
        _hot()
    finally:
        micropython.heap_unlock()


def test_injected_nacks_raise_eio_and_keep_the_buffer():
    _sim.ctl("faults", nack=1.0, ghost="keep")
    try:
        mark = bytearray(b"\xaa" * 4)
        e = raises(OSError, i2c.readfrom_mem_into, 0x50, 0x86, mark)
        eq(e.args[0], 5)
        eq(bytes(mark), b"\xaa" * 4)  # 'keep': the failed read left the old bytes
        _sim.ctl("faults", ghost="signature")
        raises(OSError, i2c.readfrom_mem_into, 0x50, 0x86, mark)
        eq(bytes(mark), b"\x3c\x2f\xfb\x3f")  # the 1.962 ghost of an ESP32 (§2.8)
    finally:
        _sim.ctl("faults", nack=0.0, ghost="keep")


def test_drdy_edges_reach_the_irq_handler():
    seen = [0]

    def handler(p):
        seen[0] += 1

    pin = machine.Pin(14, machine.Pin.IN, machine.Pin.PULL_UP)
    pin.irq(handler, machine.Pin.IRQ_FALLING)
    t0 = seen[0]
    time.sleep_ms(2000)
    n = seen[0] - t0
    # three modules on one wired-OR line, 5 Hz each: about 30 edges in 2 s
    if not 18 <= n <= 33:
        raise AssertionError("edges in 2 s: %d" % n)
    eq(pin.value(), 1)
    pin.irq(None)


def test_hard_irq_handler_may_not_allocate():
    errors = []

    def bad(p):
        try:
            errors.append([1, 2, 3])  # allocates: forbidden in a hard ISR
        except MemoryError:
            pass

    ok = [0]

    def good(p):
        ok[0] += 1

    pin = machine.Pin(14, machine.Pin.IN)
    pin.irq(bad, machine.Pin.IRQ_FALLING, hard=True)
    time.sleep_ms(700)
    eq(errors, [])
    pin.irq(good, machine.Pin.IRQ_FALLING, hard=True)
    time.sleep_ms(700)
    if ok[0] < 3:
        raise AssertionError("hard handler ran %d times" % ok[0])
    pin.irq(None)


def test_hard_irq_preempts_a_blocking_call_soft_irq_waits():
    """A hard handler runs at the edge even while the program is blocked in C (here a
    poll() on a UDP socket nobody sends to), as an ISR does; a soft one runs after."""
    import select
    import socket
    t_hard, n_hard = [0], [0]

    def stamp(p):                             # the first run's time
        if not n_hard[0]:
            t_hard[0] = time.ticks_ms()
        n_hard[0] += 1

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(socket.getaddrinfo("127.0.0.1", 0)[0][-1])
    poller = select.poll()
    poller.register(s, select.POLLIN)
    pin = machine.Pin(14, machine.Pin.IN)
    for hard in (True, False):
        n_hard[0] = 0
        pin.irq(stamp, machine.Pin.IRQ_FALLING, hard=hard)
        t0 = time.ticks_ms()
        poller.poll(700)                      # blocks in C for 700 ms
        t1 = time.ticks_ms()
        ran = n_hard[0]
        during = time.ticks_diff(t_hard[0], t0) < time.ticks_diff(t1, t0) - 100
        pin.irq(None)
        time.sleep_ms(50)
        if hard and not (ran >= 5 and during):
            raise AssertionError("hard IRQ during a blocking call: %d runs" % ran)
        if not hard and ran:
            raise AssertionError("a soft IRQ ran inside a blocking C call")
    s.close()


def test_alarm_holds_drdy_low():
    _sim.ctl("module_fault", module="mains", action="unplug")
    _sim.ctl("module_fault", module="sub-panel", action="unplug")
    try:
        i2c.writeto_mem(0x51, 0x2A, b"\xff")  # clear all event flags
        i2c.writeto_mem(0x51, 0x2B, b"\x01")  # EVENT_MASK: PERIOD_READY holds DRDY
        i2c.writeto_mem(0x51, 0x01, b"\x27")  # latch -> PERIOD_READY
        time.sleep_ms(150)
        eq(machine.Pin(14, machine.Pin.IN).value(), 0)
        i2c.writeto_mem(0x51, 0x2A, b"\x01")  # W1C releases the line
        time.sleep_ms(150)
        eq(machine.Pin(14, machine.Pin.IN).value(), 1)
    finally:
        i2c.writeto_mem(0x51, 0x2B, b"\x00")
        _sim.ctl("module_fault", module="mains", action="replug")
        _sim.ctl("module_fault", module="sub-panel", action="replug")


def test_rtc_memory_and_clock():
    r = machine.RTC()
    r.memory(b"\x01\x02\x03")
    eq(r.memory(), b"\x01\x02\x03")
    raises(ValueError, r.memory, bytes(4096))
    y = r.datetime()[0]
    if y < 2024:
        raise AssertionError("RTC year %d" % y)
    r.datetime((2030, 1, 2, 0, 3, 4, 5, 0))
    dt = r.datetime()
    eq(dt[:3], (2030, 1, 2))
    eq(dt[4:6], (3, 4))
    eq(machine.reset_cause(), machine.PWRON_RESET)
    eq(len(machine.unique_id()), 6)


def test_wlan_link_follows_the_simulator():
    w = network.WLAN(network.STA_IF)
    w.active(True)
    w.connect("bench-ap", "secret")
    eq(w.isconnected(), False)  # association takes a moment
    time.sleep_ms(network.ASSOC_MS + 100)
    eq(w.isconnected(), True)
    eq(w.status(), network.STAT_GOT_IP)
    _sim.ctl("wifi", up=False, rssi=-80)
    time.sleep_ms(150)
    eq(w.isconnected(), False)
    eq(w.status(), network.STAT_NO_AP_FOUND)
    _sim.ctl("wifi", up=True)
    time.sleep_ms(150 + network.ASSOC_MS)
    eq(w.isconnected(), True)
    eq(w.status("rssi"), -80)


run(globals())
