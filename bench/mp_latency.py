# The node's main.py for the latency benchmark (bench/latency.py): the node started as
# lib/rbnode/app.py starts it in continuous mode, with timestamps (µs) taken
#   - in the DRDY interrupt handler (the board's drdy_pin, wrapped: a ring of recent edges),
#   - when a meter's sample() has booked a read (the RT values are in the hub),
#   - when a power event is raised (with the edge of the window that raised it).
# At Ctrl-C it prints them: "LAT <µs>,<µs>,..." and "EV <module> <ch> <edge µs or 0>" lines.
# time.ticks_us() on the unix port is CLOCK_MONOTONIC, the clock of Python's time.monotonic().
import asyncio
import sys
from time import ticks_diff, ticks_ms, ticks_us

from rbnode import app
from rbnode.board import Board
from rbnode.node import Node

RING = 64
ring_ms = [0] * RING
ring_us = [0] * RING
idx = [0]
lat = []          # µs from an edge to its values booked
events = []       # (module, ch, edge µs)
edge_now = [0]    # the edge of the sample being booked


class StampBoard(Board):
    def drdy_pin(self, n, handler):
        def isr(pin):               # a hard IRQ: no allocation
            k = idx[0]
            ring_ms[k] = ticks_ms()
            ring_us[k] = ticks_us()
            idx[0] = (k + 1) % RING
            handler(pin)
        return Board.drdy_pin(self, n, isr)


def edge_us(t_ms):
    """The µs stamp of the edge the sampler stamped t_ms (None: a predicted edge)."""
    best, err = None, 2
    for k in range(RING):
        d = abs(ticks_diff(ring_ms[k], t_ms))
        if d < err:
            best, err = ring_us[k], d
    return best


def instrument(m):
    sample = m.sample
    on_event = m.on_event

    def timed(t):
        e = edge_us(t)
        edge_now[0] = e
        sample(t)
        if e is not None:
            lat.append(ticks_diff(ticks_us(), e))

    def event(meter, ch, before, after):
        events.append((meter.name, ch, edge_now[0] or 0))     # 0: a predicted edge
        on_event(meter, ch, before, after)
    m.sample = timed
    m.on_event = event


def main():
    cfg, errs = app.load_config("config.json")
    if errs:
        raise SystemExit("config: %s" % errs)
    board = StampBoard(cfg["i2c"])
    node = Node(cfg, board)
    node.start()
    for m in node.meters:
        instrument(m)
    try:
        asyncio.run(app._main(node, 0, app._network(node, cfg)))
    except KeyboardInterrupt:
        pass
    print("LAT " + ",".join(str(x) for x in lat))
    for name, ch, e in events:
        print("EV %s %d %d" % (name, ch, e))
    sys.stdout.flush() if hasattr(sys.stdout, "flush") else None


main()
