"""Levelled log lines on the console; the newest warnings and errors are kept for reports.

    from rbnode import log
    log.info("meters", "found %s at 0x%02x", "UI1", 0x50)
"""
import time

LEVELS = ("debug", "info", "warning", "error")
_level = 1
_t0 = time.ticks_ms()
recent = []          # (level, text) of the newest warnings and errors
RECENT = 16


def set_level(name):
    global _level
    _level = LEVELS.index(name)


def _emit(lv, tag, msg, args):
    if lv < _level and lv < 2:
        return
    text = "%s: %s" % (tag, msg % args if args else msg)
    if lv >= _level:
        t = time.ticks_diff(time.ticks_ms(), _t0)
        print("[%6d.%03d] %s %s" % (t // 1000, t % 1000, "DIWE"[lv], text))
    if lv >= 2:
        recent.append((LEVELS[lv], text))
        if len(recent) > RECENT:
            recent.pop(0)


def debug(tag, msg, *args):
    _emit(0, tag, msg, args)


def info(tag, msg, *args):
    _emit(1, tag, msg, args)


def warning(tag, msg, *args):
    _emit(2, tag, msg, args)


def error(tag, msg, *args):
    _emit(3, tag, msg, args)
