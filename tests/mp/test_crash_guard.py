# The boot-loop guard (lib/rbnode/app.py) when the filesystem refuses every write: the crash
# count goes to RTC memory (continuous mode) and three crashes in a row still end in safe
# mode; a crash that can be counted nowhere is reported (the restart then waits).
# sim: tools/host/sim/scenarios/energy.json
# timeout: 60
import json
import os

from mptest import eq, run

from rbnode import app, config
from rbnode.board import Board
from rbnode.node import Node

CFG = {"log_level": "warning", "watchdog_s": 0, "drdy_pin": 4,
       "modules": [{"address": "0x50", "name": "ui3"}]}


def _node(mode="continuous"):
    cfg = config.check(dict(CFG, mode=mode))[0]
    board = Board(cfg["i2c"])
    node = Node(cfg, board)
    node.start()
    return cfg, board, node


def _unwritable(path):
    try:
        os.remove(path)
    except OSError:
        pass
    os.mkdir(path)                    # a directory where the file must go: EISDIR


def test_crash_count_in_rtc_memory_when_the_filesystem_refuses_it():
    cfg, board, node = _node()
    board.rtc_memory(b"")
    _unwritable(app.CRASH_COUNT)
    try:
        for n in range(app.CRASH_LIMIT):
            eq(app._crashes(board, cfg), n)
            assert app._crashed(node, RuntimeError("boom %d" % n), n), "not counted"
        eq(app._crashes(board, cfg), app.CRASH_LIMIT)
        with open("config.json", "w") as f:
            json.dump(dict(CFG), f)
        reasons = app.run("config.json", board)       # the next boot: safe mode, not a loop
        assert reasons and "crashed 3 times" in reasons[0], reasons
        app._clear_crashes(board, cfg)                # healthy again: the count goes
        eq(app._crashes(board, cfg), 0)
    finally:
        os.rmdir(app.CRASH_COUNT)
        board.rtc_memory(b"")


def test_a_crash_counted_nowhere_is_reported():
    cfg, board, node = _node("sleep")                 # RTC memory holds the sleep state
    _unwritable(app.CRASH_COUNT)
    try:
        eq(app._crashed(node, RuntimeError("boom"), 0), False)
        eq(app._crashes(board, cfg), 0)
    finally:
        os.rmdir(app.CRASH_COUNT)


run(globals())
