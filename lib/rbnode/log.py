"""Levelled log lines on the console; the newest warnings and errors are kept for reports.

    from rbnode import log
    log.info("meters", "found %s at 0x%02x", "UI1", 0x50)
"""
try:
    from time import ticks_diff, ticks_ms
except ImportError:     # CPython: config.py (and so this) runs in tools/checkconfig.py too
    from rbamp._time import ticks_diff, ticks_ms

LEVELS = ("debug", "info", "warning", "error")    # config.py's log_level takes these
_level = 1
_t0 = ticks_ms()
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
        t = ticks_diff(ticks_ms(), _t0)
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
