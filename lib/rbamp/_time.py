# Millisecond ticks on MicroPython and CPython alike (wrap-safe ticks_diff on MicroPython).
try:
    from time import sleep_ms, ticks_add, ticks_diff, ticks_ms  # noqa: F401
except ImportError:  # CPython (Linux SBC with smbus2)
    import time as _t

    def ticks_ms():
        return int(_t.monotonic() * 1000)  # pyright: ignore[reportAttributeAccessIssue]

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

    def sleep_ms(ms):
        _t.sleep(ms / 1000)
