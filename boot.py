# boot.py: runs first on every start. Keep it tiny: a broken boot.py locks users out.
import micropython

try:
    micropython.alloc_emergency_exception_buf(100)  # tracebacks from IRQ handlers
except AttributeError:
    pass
