# main.py: start the node application. A failure here must leave the REPL usable.
import sys

try:
    from rbnode import demo

    demo.run("config.json")
except KeyboardInterrupt:
    print("stopped")
except Exception as e:  # noqa: BLE001 - report and return to the REPL, never crash-loop
    sys.print_exception(e)
