# The real mqtt_as on the unix port: private mosquitto, WLAN link from the bench.
# sim: default
# broker: yes
# timeout: 90
import asyncio
import os

import _sim
from mptest import eq, run

from mqtt_as import MQTTClient, config


async def _next(client):
    async for topic, msg, retained in client.queue:
        return topic.decode(), msg.decode()


async def _scenario(log):
    config.update({"server": os.getenv("MQTT_HOST"), "port": int(os.getenv("MQTT_PORT")),
                   "ssid": "bench-ap", "wifi_pw": "secret", "queue_len": 4, "keepalive": 10,
                   "will": ("t/avail", "offline", True, 1)})
    c = MQTTClient(config)
    await asyncio.wait_for(c.connect(quick=True), 10)
    await c.subscribe("t/echo", 1)
    await c.publish("t/echo", "one", qos=1)
    log.append(await asyncio.wait_for(_next(c), 5))
    c.down.clear()
    _sim.ctl("wifi", up=False)                 # the access point goes away
    await asyncio.wait_for(c.down.wait(), 10)
    log.append("down")
    c.up.clear()
    _sim.ctl("wifi", up=True)
    await asyncio.wait_for(c.up.wait(), 40)      # mqtt_as reconnects by itself
    log.append("up")
    await c.subscribe("t/echo", 1)
    await c.publish("t/echo", "two", qos=1)
    log.append(await asyncio.wait_for(_next(c), 5))
    c.close()


def test_connect_publish_survive_link_loss():
    log = []
    asyncio.run(_scenario(log))
    eq(log, [("t/echo", "one"), "down", "up", ("t/echo", "two")])


run(globals())
