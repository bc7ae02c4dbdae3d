# Task ownership and supervision (lib/rbnode/tasks.py) on the unix port: a task that raises is
# logged once, counted and restarted with backoff; a hung one is named as stuck; stop()
# cancels every one. Then the whole node with the real mqtt_as and mosquitto: every
# supervised task of the node, the publisher and the link made to raise once (MemoryError
# among them), and the node seen publishing again on the broker.
# sim: tools/host/sim/scenarios/energy.json
# broker: yes
# timeout: 150
import asyncio
import json
import os
from time import ticks_diff, ticks_ms

from mptest import eq, run

from rbnode import config
from rbnode.board import Board
from rbnode.node import Node
from rbnode.net.publisher import Publisher
from rbnode.tasks import Supervisor

from mqtt_as import MQTTClient, config as mqtt_defaults


def test_a_failing_task_is_restarted_with_backoff_and_counted():
    sup = Supervisor()
    g = sup.group("t")
    runs = []

    async def flaky():
        runs.append(ticks_ms())
        if len(runs) == 1:
            raise MemoryError("first")
        if len(runs) == 2:
            raise ValueError("second")
        await asyncio.sleep(60)

    async def main():
        g.start("flaky", flaky)
        await asyncio.sleep_ms(3500)            # 1 s, then 2 s of backoff
        eq(len(runs), 3)
        eq(sup.failures, 2)
        eq(g.failures("flaky"), 2)
        if not ticks_diff(runs[1], runs[0]) >= 1000 <= ticks_diff(runs[2], runs[1]) - 1000:
            raise AssertionError("backoff: %r" % runs)
        if "ValueError" not in sup.last:
            raise AssertionError(sup.last)
        g.stop()
        await asyncio.sleep_ms(10)
        eq(g.stuck(ticks_ms()), [])
    asyncio.run(main())


def test_a_hung_task_is_stuck_and_stop_cancels_everything():
    sup = Supervisor()
    g = sup.group("t")
    cancelled = []

    async def hangs():
        try:
            await asyncio.Event().wait()     # never beats
        except asyncio.CancelledError:
            cancelled.append("hangs")
            raise

    async def beats():
        while True:
            g.beat("beats")
            await asyncio.sleep_ms(100)

    async def one_shot():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append("one-shot")
            raise

    async def main():
        g.start("hangs", hangs, beat_s=1)
        g.start("beats", beats, beat_s=1)
        g.spawn(one_shot())
        await asyncio.sleep_ms(1300)
        eq(sup.stuck(), ["t.hangs"])
        sup.stop()
        await asyncio.sleep_ms(10)
        eq(sorted(cancelled), ["hangs", "one-shot"])
        eq(sup.stuck(), [])
    asyncio.run(main())


CFG = {"log_level": "warning", "period_s": 10, "save_s": 300, "watchdog_s": 0, "drdy_pin": 4,
       "wifi": {"ssid": "bench-ap", "password": "secret"},
       "mqtt": {"host": os.getenv("MQTT_HOST") or "", "port": int(os.getenv("MQTT_PORT") or 1883),
                "state_s": 1, "health_s": 10, "discovery": False},
       "link": {"backoff_min_s": 1, "backoff_max_s": 2},
       "modules": [{"address": "0x50", "name": "ui3"}]}


def fail_once(obj, name, exc, fired):
    """obj.name raises exc at its first call, then works again."""
    real = getattr(obj, name)

    def once(*a, **k):
        if name not in fired:
            fired.append(name)
            raise exc
        return real(*a, **k)
    setattr(obj, name, once)


async def _listen(seen):
    c = dict(mqtt_defaults)
    c.update({"server": CFG["mqtt"]["host"], "port": CFG["mqtt"]["port"], "ssid": "bench-ap",
              "wifi_pw": "secret", "queue_len": 32, "client_id": "listener"})
    cl = MQTTClient(c)
    await asyncio.wait_for(cl.connect(quick=True), 20)
    await cl.subscribe("rbnode/+/ui3/state", 0)
    await cl.subscribe("rbnode/+/health", 0)
    async for topic, msg, retained in cl.queue:
        seen.append((ticks_ms(), topic.decode(), msg.decode()))


def test_every_task_of_the_node_fails_once_and_the_node_publishes_again():
    cfg = config.check(CFG)[0]
    board = Board(cfg["i2c"])
    node = Node(cfg, board)
    node.start()
    pub = Publisher(node, cfg)
    fired = []
    seen = []

    async def main():
        listener = asyncio.create_task(_listen(seen))
        pub.start()
        run_task = asyncio.create_task(node.run())
        await asyncio.wait_for(pub.link.ready(), 30)
        await asyncio.sleep(2)
        # one fault in each supervised task, MemoryError first
        fail_once(node.metering, "cycle", MemoryError("metering"), fired)       # node.metering
        fail_once(node.sampler, "_round", MemoryError("sampler"), fired)        # node.sampler
        fail_once(node, "uptime_s", RuntimeError("supervise"), fired)           # node.supervise
        fail_once(pub, "publish_states", MemoryError("periodic"), fired)        # publisher.periodic
        fail_once(pub, "publish_energy", OSError(5), fired)                     # publisher.feeds
        fail_once(pub.outbox, "put", ValueError("events"), fired)   # publisher.feeds (or periodic)
        fail_once(pub.link.client, "publish", MemoryError("worker"), fired)     # a link worker
        await node.latch_now()                 # a period record and an event now
        node.hub.events.put({"kind": "test", "module": "ui3"})
        t_faults = ticks_ms()
        await asyncio.sleep(12)
        restarted = node.supervisor.report()
        if node.supervisor.failures < 6 or not {
                "node.metering", "node.sampler", "node.supervise", "publisher.periodic",
                "publisher.feeds"} <= set(restarted) or not any(
                k.startswith("link.") for k in restarted):
            raise AssertionError("fired %r; restarted %r (%d failures)" % (
                fired, restarted, node.supervisor.failures))
        eq(node.supervisor.stuck(), [])
        # publishing again: states and health on the broker after every fault
        after = [(topic, msg) for t, topic, msg in seen if ticks_diff(t, t_faults) > 6000]
        if not any(t.endswith("/ui3/state") for t, _ in after):
            raise AssertionError("no state after the faults: %r" % seen[-10:])
        pub.publish_health()
        await asyncio.sleep(1)
        health = [json.loads(m) for t, topic, m in seen if topic.endswith("/health")]
        eq(health[-1]["task_failures"], node.supervisor.failures)
        eq(node.metering.members() != [], True)
        node.stop()
        listener.cancel()
        await asyncio.sleep_ms(50)
        eq(run_task.done(), True)
    asyncio.run(main())



def test_a_wake_cut_off_by_its_budget_leaves_no_send_running():
    """Sleep mode's network step (sleep/wakenet.py) cut off by its budget while this wake's
    records are on their way (the broker stopped answering: its process is paused, so no ack
    can come, however fast the sends are): the cut cancels their sends, so none is counted
    or sent again once the broker is back (the backlog keeps them for the next wake: they
    would go twice, out of order). After the cut the link publishes what its outbox held,
    no more."""
    from rbnode.sleep.backlog import Backlog
    from rbnode.sleep.wakenet import WakeNet
    cfg = config.check(CFG)[0]
    node = Node(cfg, Board(cfg["i2c"]))
    node.start()
    try:
        os.remove("cut.jsonl")
    except OSError:
        pass
    net = WakeNet(node, cfg, Backlog("cut.jsonl", 50))
    link = net.link

    async def main():
        eq(await net.deliver(30000), True)                  # connected, the values out
        for i in range(12):
            node.hub.periods.put({"module": "ui3", "t": i, "status": "ok"})
        pid = int(os.getenv("MQTT_PID"))
        os.system("kill -STOP %d" % pid)    # no acks from here on: the sends hang
        try:
            eq(await net.deliver(1500), False)              # cut off
            queued = len(net.pub.outbox) + len(link._inflight)
            p0 = link.published
        finally:
            os.system("kill -CONT %d" % pid)
        eq(len(net.backlog), 12)                            # kept for the next wake
        await asyncio.wait_for(link.ready(), 30)            # the link is back
        await asyncio.wait_for(link.flushed(), 30)
        await asyncio.sleep(2)
        eq(link.published - p0, queued, "(published after the cut; the outbox held)")
        net.pub.stop()
        node.stop()
    asyncio.run(main())

if __name__ == "__main__":
    run(globals())
