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
    try:  # an update on trial that does not start: back to the version before (and reset)
        import rbboot

        rbboot.failed("%s: %s" % (type(e).__name__, e))
    except ImportError:
        pass
