# boot.py: runs first on every start. Keep it tiny: a broken boot.py locks users out.
import micropython

try:
    micropython.alloc_emergency_exception_buf(100)  # tracebacks from IRQ handlers
except AttributeError:
    pass

try:  # which app runs: the image's, or an update installed over the air (lib/rbboot.py)
    import rbboot

    rbboot.select()
except Exception as e:  # noqa: BLE001 - never stop the boot: the image's app runs
    import sys

    sys.print_exception(e)
