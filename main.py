# main.py: start the node (lib/rbnode/app.py). Whatever happens, the REPL stays usable:
# a bad config.json puts the node in safe mode, a crash restarts it at most a few times.
import sys

try:
    from rbnode import app

    app.run("config.json")
except KeyboardInterrupt:
    print("stopped")
except Exception as e:  # noqa: BLE001 - e.g. a broken image: report, stay at the REPL
    sys.print_exception(e)
