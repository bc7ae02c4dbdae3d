# What a MicroPython board does at power-up: run boot.py, then main.py, from the
# filesystem (here: the current directory, the node's simulated flash).
# After a soft reset in the raw REPL a board runs boot.py only (tools/host/serialboard.py says so).
import os
import sys

if "" not in sys.path:
    sys.path.insert(0, "")       # a board's sys.path starts with its current directory
for _name in ("boot.py",) if os.getenv("HOSTBOARD_RAW_REPL") else ("boot.py", "main.py"):
    try:
        _src = open(_name).read()
    except OSError:
        continue
    exec(compile(_src, _name, "exec"), {"__name__": "__main__", "__file__": _name})
    sys.stdout.flush() if hasattr(sys.stdout, "flush") else None
