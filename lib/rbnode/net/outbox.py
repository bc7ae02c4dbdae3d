"""The bounded outgoing MQTT queue between the node and the link.

    box = Outbox(32)
    box.latest("rbnode/n1/mains/energy", text, qos=1)   # a value: only the newest is kept
    box.put("rbnode/n1/events", text)                   # a record: FIFO, oldest dropped first
    msg = await box.get()                               # (topic, payload, retain, qos)

Producers never wait: sampling and the ledger go on whatever the network does. Values
(state, energy totals, health, discovery) are kept per topic, newest only, so an outage of
any length costs no energy total: the one sent afterwards is the latest. Records (events,
command results, period records) queue up to `size`; when full, the oldest record is
dropped and counted (command results are kept: the command reader waits for room()
instead). Values are never dropped.
"""
import asyncio


class Outbox:
    def __init__(self, size=32):
        self.size = size
        self.values = {}       # topic -> (payload, retain, qos)
        self.order = []        # their topics, in the order they were first queued
        self.records = []      # [(topic, payload, retain, qos)]
        self.dropped = 0
        self._ev = asyncio.Event()

    def latest(self, topic, payload, retain=True, qos=0, last=False):
        """Queue a value: replaces a not yet sent value of the same topic (in its place, or
        at the end with last=True)."""
        if topic not in self.values:
            self.order.append(topic)
        elif last:
            self.order.remove(topic)
            self.order.append(topic)
        self.values[topic] = (payload, retain, qos)
        self._ev.set()

    def put(self, topic, payload, retain=False, qos=0, keep=False):
        """Queue a record; returns False when an older one had to be dropped for it.
        keep=True (command results): never dropped; their producer waits for room()."""
        ok = True
        if len(self.records) >= self.size:
            for i, r in enumerate(self.records):
                if not r[4]:
                    self.records.pop(i)
                    self.dropped += 1
                    ok = False
                    break
        self.records.append((topic, payload, retain, qos, keep))
        self._ev.set()
        return ok

    def __len__(self):
        return len(self.values) + len(self.records)

    def pop(self):
        """The next message, values first (oldest queued value first), or None."""
        if self.order:
            topic = self.order.pop(0)
            payload, retain, qos = self.values.pop(topic)
            return topic, payload, retain, qos
        if self.records:
            return self.records.pop(0)[:4]
        return None

    async def room(self):
        """Wait until a record fits without dropping one (for producers that can wait:
        the command handler, so a burst of commands never costs their results)."""
        while len(self.records) >= self.size:
            await asyncio.sleep_ms(20)

    async def get(self):
        while True:
            m = self.pop()
            if m is not None:
                return m
            self._ev.clear()
            await self._ev.wait()
