"""Bring-up demo on the rbamp driver: what `make run` shows until the node services land.

Scan and detect the modules, stream the RT block of every module on each DRDY edge
(polling at 5 Hz without a DRDY pin), close a period every `period_s` with the fleet
helper (General Call when every module has it), print, and publish to MQTT if configured.
"""
import asyncio
import json

from machine import I2C, Pin
from rbamp import Fleet, RbAmpError


def load_config(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print("demo: no usable %s (%s), using defaults" % (path, e))
        return {}


def read_all_rt(mods):
    for m in mods:
        try:
            m.read_rt()
        except RbAmpError:
            pass  # counted by the driver (retries, exhaustions, sanity rejects)


async def sampler(mods, flag):
    while True:
        await flag.wait()
        await asyncio.sleep_ms(10)  # wired-OR: the modules' edges come 1-5 ms apart
        read_all_rt(mods)


async def poller(mods):
    while True:
        read_all_rt(mods)
        await asyncio.sleep_ms(200)


async def metering(fleet, period_s):
    while True:
        await asyncio.sleep(period_s)
        for m, snap in fleet.read_all():
            if isinstance(snap, Exception):
                print("period 0x%02x: %r" % (m.addr, snap))
            else:
                print("period 0x%02x: avg %s W over %d ms -> %s Wh" % (
                    m.addr, ["%.1f" % p for p in snap.avg_power[:m.channels]], snap.dt_ms,
                    ["%.4f" % m.energy.wh(c) for c in range(m.channels)]))


async def report(mods, pin, client, topic):
    while True:
        await asyncio.sleep(2)
        for m in mods:
            s = m.rt
            if not s.reads:
                continue
            n = range(m.channels)
            print("0x%02x %s U=%.1fV I=%s P=%s (%d reads, %d retries)" % (
                m.addr, m.variant_name(), s.voltage, ["%.2f" % s.current[c] for c in n],
                ["%.0f" % s.power[c] for c in n], s.reads, m.retry_count_total))
            if client is not None:
                msg = s.as_dict()
                msg["wh"] = [m.energy.wh(c) for c in n]
                await client.publish("%s/0x%02x" % (topic, m.addr), json.dumps(msg))
        if pin is not None and hasattr(pin, "edges"):
            print("drdy edges seen: %d" % pin.edges)


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
    fleet = Fleet(I2C(ic.get("id", 0), freq=ic.get("freq", 50000))).begin()
    mods = fleet.modules
    for m in mods:
        print("found %s at 0x%02x, protocol v1.%d, uid %s, General Call %s" % (
            m.variant_name(), m.addr, m.firmware_version - 1, m.read_uid().hex(),
            "on" if fleet.gc else "off (sequential latches)"))
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
    asyncio.create_task(metering(fleet, cfg.get("period_s", 60)))
    await report(mods, pin, client, topic)


def run(path="config.json"):
    asyncio.run(amain(load_config(path)))
