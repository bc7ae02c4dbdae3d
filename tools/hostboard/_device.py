# What a MicroPython board does at power-up: run boot.py, then main.py, from the
# filesystem (here: the current directory, the node's simulated flash).
import sys

for _name in ("boot.py", "main.py"):
    try:
        _src = open(_name).read()
    except OSError:
        continue
    exec(compile(_src, _name, "exec"), {"__name__": "__main__", "__file__": _name})
    sys.stdout.flush() if hasattr(sys.stdout, "flush") else None
