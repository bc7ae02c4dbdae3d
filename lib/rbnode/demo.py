"""Bring-up demo: talks to rbAmp modules with raw register reads (rbamp-protocol.md §19).

It is what `make run` shows until the driver (lib/rbamp) and the node services land:
scan, identify, stream the RT block on every DRDY edge, latch a period, print and publish.
"""
import asyncio
import json
import struct
import time

from machine import I2C, Pin

_RT, _LATCH, _VALID, _AVG0 = 0x86, 0x27, 0x07, 0xDC
_NAMES = {1: "UI1", 2: "UI2", 3: "UI3", 4: "I1", 5: "I2", 6: "I3"}


def load_config(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print("demo: no usable %s (%s), using defaults" % (path, e))
        return {}


class Module:
    def __init__(self, i2c, addr):
        self.i2c, self.addr = i2c, addr
        self.buf = bytearray(56)
        self.one = bytearray(1)
        ident = i2c.readfrom_mem(addr, 0x54, 4)  # PRODUCT_ID, HW_VARIANT, FW_TIER, CAP lo
        self.variant = ident[1]
        self.channels = (self.variant - 1) % 3 + 1
        self.version = i2c.readfrom_mem(addr, 0x03, 1)[0]
        self.uid = i2c.readfrom_mem(addr, 0x5C, 12)
        self.rt = None
        self.reads = self.errors = 0
        self.anchor = None
        self.mwh = [0] * self.channels  # integer milli-Wh, never a float accumulator

    def read_rt(self):
        try:
            self.i2c.readfrom_mem_into(self.addr, _RT, self.buf)  # one atomic burst (§2.6)
        except OSError:
            self.errors += 1  # never use the buffer of a failed transfer (§2.8)
            return
        self.reads += 1
        self.rt = struct.unpack("<14f", self.buf)

    def latch(self):
        self.i2c.writeto_mem(self.addr, 0x01, bytes((_LATCH,)))
        return time.ticks_ms()

    def close_period(self, t_latch):
        self.i2c.readfrom_mem_into(self.addr, _VALID, self.one)
        if not self.one[0] & 1:
            return "stale"  # keep the anchor: the next good latch covers the gap (§7.3)
        if self.anchor is None:
            self.anchor = t_latch  # primer: its snapshot is discarded (§7.4)
            return "primer"
        avg = [struct.unpack("<f", self.i2c.readfrom_mem(self.addr, r, 4))[0]
               for r in (0xDC, 0xC2, 0xC6)[: self.channels]]
        dt = time.ticks_diff(t_latch, self.anchor)
        self.anchor = t_latch
        for ch, p in enumerate(avg):
            self.mwh[ch] += int(p * dt / 3600 + 0.5)
        return avg


async def sampler(mods, flag):
    while True:
        await flag.wait()
        await asyncio.sleep_ms(10)  # wired-OR: edges of all modules come 1-5 ms apart
        flag.clear() if hasattr(flag, "clear") else None
        for m in mods:
            m.read_rt()


async def poller(mods):
    while True:
        for m in mods:
            m.read_rt()
        await asyncio.sleep_ms(200)


async def metering(mods, period_s):
    stamps = [m.latch() for m in mods]  # primer latches (sequential, §8.1)
    await asyncio.sleep_ms(50)
    for m, t in zip(mods, stamps):
        m.close_period(t)
    while True:
        await asyncio.sleep(period_s)
        stamps = [m.latch() for m in mods]
        await asyncio.sleep_ms(50)
        for m, t in zip(mods, stamps):
            r = m.close_period(t)
            print("period 0x%02x: %s -> totals mWh %s" % (m.addr, r, m.mwh))


async def report(mods, pin, client, topic):
    while True:
        await asyncio.sleep(2)
        for m in mods:
            if m.rt is None:
                continue
            u, i, p = m.rt[0], m.rt[2:2 + m.channels], m.rt[8:8 + m.channels]
            line = "0x%02x %s U=%.1fV I=%s P=%s (%d reads, %d errors)" % (
                m.addr, _NAMES.get(m.variant, "?"), u, ["%.2f" % x for x in i],
                ["%.0f" % x for x in p], m.reads, m.errors)
            print(line)
            if client is not None:
                msg = {"u": u, "i": list(i), "p": list(p), "mwh": m.mwh}
                await client.publish("%s/0x%02x" % (topic, m.addr), json.dumps(msg))
        if pin is not None:
            print("drdy edges seen: %d" % pin.edges if hasattr(pin, "edges") else "")


async def connect_mqtt(cfg):
    mq = cfg.get("mqtt") or {}
    if not mq.get("host"):
        return None
    try:
        from mqtt_as import MQTTClient, config
    except ImportError:
        print("demo: mqtt_as not installed, not publishing")
        return None
    wifi = cfg.get("wifi") or {}
    config.update({"server": mq["host"], "port": mq.get("port", 1883), "queue_len": 0,
                   "ssid": wifi.get("ssid"), "wifi_pw": wifi.get("password")})
    client = MQTTClient(config)
    try:
        await asyncio.wait_for(client.connect(quick=True), 15)
    except (OSError, asyncio.TimeoutError) as e:
        print("demo: MQTT connect failed (%r), not publishing" % (e,))
        return None
    print("demo: connected to MQTT %s:%s" % (mq["host"], mq.get("port", 1883)))
    return client


async def amain(cfg):
    ic = cfg.get("i2c") or {}
    i2c = I2C(ic.get("id", 0), freq=ic.get("freq", 50000))
    mods = []
    for a in i2c.scan():
        try:
            if i2c.readfrom_mem(a, 0x54, 1)[0] == 1:
                mods.append(Module(i2c, a))
        except OSError as e:
            print("0x%02x: not identified (%r)" % (a, e))
    for m in mods:
        print("found %s at 0x%02x, protocol v1.%d, uid %s" % (
            _NAMES.get(m.variant, "?"), m.addr, m.version - 1, m.uid.hex()))
    pin_no = (cfg.get("drdy") or {}).get("pin")
    pin = None
    if pin_no is not None:
        flag = asyncio.ThreadSafeFlag()
        pin = Pin(pin_no, Pin.IN, Pin.PULL_UP)
        pin.irq(lambda p: flag.set(), Pin.IRQ_FALLING, hard=True)
        asyncio.create_task(sampler(mods, flag))
    else:
        asyncio.create_task(poller(mods))
    client = await connect_mqtt(cfg)
    topic = "%s/%s/demo" % ((cfg.get("mqtt") or {}).get("base_topic", "rbnode"),
                            (cfg.get("node") or {}).get("id", "rbnode"))
    asyncio.create_task(metering(mods, cfg.get("period_s", 60)))
    await report(mods, pin, client, topic)


def run(path="config.json"):
    asyncio.run(amain(load_config(path)))
