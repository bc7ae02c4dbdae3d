"""A paho-mqtt subscriber that records everything a node publishes (CPython side; the tests
and the benchmarks).

    with Recorder(broker) as rec:
        rec.wait(lambda m: m.topic.endswith("/status") and m.text == "online")
"""
import json
import threading
import time

import paho.mqtt.client as mqtt


class Msg:
    def __init__(self, topic, payload, retain):
        self.t = time.monotonic()
        self.topic = topic
        self.payload = payload
        self.retain = retain

    @property
    def text(self):
        return self.payload.decode(errors="replace")

    def json(self):
        return json.loads(self.payload)

    def __repr__(self):
        return "<%s %s>" % (self.topic, self.text[:80])


class Recorder:
    def __init__(self, broker, topic="#"):
        self.broker = broker
        self.msgs = []
        self.topic = topic
        self._cv = threading.Condition()
        self.c = None
        self.connects = 0    # the client reconnects by itself: the broker then replays retained

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = self._on
        self.c.on_connect = self._on_connect
        self.c.reconnect_delay_set(0.2, 1)
        self.c.connect(self.broker.host, self.broker.port)
        self.c.loop_start()

    def close(self):
        if self.c:
            self.c.loop_stop()
            self.c.disconnect()

    def _on_connect(self, client, userdata, flags, rc, props=None):
        self.connects += 1
        client.subscribe(self.topic, 1)

    def _on(self, client, userdata, m):
        with self._cv:
            self.msgs.append(Msg(m.topic, bytes(m.payload), m.retain))
            self._cv.notify_all()

    def publish(self, topic, payload, retain=False, qos=1):
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def wait(self, pred, timeout=30, start=0, what=None):
        """The first message (index >= start) matching pred."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for i in range(start, len(self.msgs)):
                    if pred(self.msgs[i]):
                        return self.msgs[i]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no message %s in %d s (the recorder connected %d "
                                         "time(s)); last: %r" % (what or "matching", timeout,
                                                                 self.connects, self.msgs[-5:]))
                self._cv.wait(min(left, 0.2))

    def since(self, start=0, suffix=None):
        with self._cv:
            return [m for m in self.msgs[start:] if suffix is None or m.topic.endswith(suffix)]

    def mark(self):
        with self._cv:
            return len(self.msgs)
