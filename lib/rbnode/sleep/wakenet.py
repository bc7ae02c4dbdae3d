"""The network step of a sleep-mode wake (mode "sleep" with mqtt.host), under a hard budget.

    net = WakeNet(node, cfg, Backlog(...), reconcile=False)
    done = await net.deliver(budget_ms, discovery=False)   # after the wake's energy cycle
    ...                                                    # stay awake: cycle, deliver again
    await net.close(budget_ms)                             # "asleep", disconnect

deliver(): connect (WiFi association, broker; the first time only), then, oldest first, the
records kept on flash by earlier wakes and this wake's period records and events (QoS 1:
each counts as delivered when the broker acknowledged it), then the retained values
(discovery when asked, states read just before, energy totals, health). Whatever was not
acknowledged when the budget runs out stays in the backlog for the next wake. Totals are
retained values: the newest goes, so an outage never costs energy.

An acknowledged record leaves the backlog only after deliver() returns: a record whose
acknowledgement was lost in the cut-off is sent again next time (at least once; `wake` and
`t` in the record identify it).
"""
import asyncio
import json

from .. import log
from ..net.publisher import Publisher

WINDOW = 8        # records in flight at once (their acknowledgements come together)


class WakeNet:
    def __init__(self, node, cfg, backlog, reconcile=False):
        self.node = node
        self.backlog = backlog
        self.pub = Publisher(node, cfg, asleep=True)
        self.pub.reconciled = not reconcile   # the totals are checked with the broker's
        self.link = self.pub.link             # only when RTC memory did not have them
        self.new = []            # this wake's records not delivered yet: (topic, payload)
        self.flash_sent = 0      # records of the backlog delivered in this deliver()
        self.sent = 0            # records delivered since boot

    def _take(self):
        """This wake's period records and events, from the hub's feeds."""
        hub, base = self.node.hub, self.pub.base
        for rec in hub.periods.drain():
            self.new.append(("%s/%s/period" % (base, rec["module"]), json.dumps(rec)))
        for ev in hub.events.drain():
            self.new.append((base + "/events", json.dumps(ev)))

    async def deliver(self, budget_ms, discovery=False):
        """True when everything went within budget_ms."""
        self._take()
        if not self.pub.started:
            self.pub.start()
        self.flash_sent = 0
        try:
            await asyncio.wait_for_ms(self._deliver(discovery), budget_ms)
            done = True
        except asyncio.TimeoutError:
            done = False
            log.warning("wake", "network step cut off after %d ms (%s): %d record(s) kept for "
                        "the next wake", budget_ms, "online" if self.link.online else
                        "no connection", len(self.backlog) - self.flash_sent + len(self.new))
        self.backlog.consume(self.flash_sent)
        self.backlog.append(self.new)
        self.new = []
        self.pub.extra_drops = self.backlog.dropped
        return done

    async def _deliver(self, discovery):
        link, pub = self.link, self.pub
        await link.ready()
        while not pub.reconciled:
            await asyncio.sleep_ms(20)
        if discovery:                          # queued one message at a time
            await pub.publish_discovery()
        for m in self.node.metering.members():  # the RT values now, for the state message
            m.snapshot()
        pub.publish_values()
        kept = self.backlog.records()
        try:
            while True:
                k = await self._send(kept, WINDOW)
                self.flash_sent += k
                if k < WINDOW:
                    break
        finally:
            kept.close()                       # the file, also when the budget cut in
        while self.new:
            n = min(WINDOW, len(self.new))
            await self._send(iter(self.new[:n]), n)
            del self.new[:n]
        await link.flushed()

    async def _send(self, it, n):
        """Up to n records of iterator `it` at once (in order); returns how many, once the
        broker has them all. Its sends are its own: when the budget cuts in (or one fails),
        none is left running to publish a record the backlog keeps for the next wake."""
        tasks = []
        try:
            for topic, payload in it:
                tasks.append(asyncio.create_task(self.link.send(topic, payload, False, 1)))
                if len(tasks) == n:
                    break
            for t in tasks:
                await t
        except BaseException:        # CancelledError (the budget) is one: cancel, pass it on
            for t in tasks:
                t.cancel()
            raise
        self.sent += len(tasks)
        return len(tasks)

    async def close(self, budget_ms):
        """The retained status says "asleep" (the will says "offline" if a wake dies)."""
        try:
            await asyncio.wait_for_ms(self.link.goodbye("asleep"), budget_ms)
        except asyncio.TimeoutError:
            pass
        self.pub.stop()
