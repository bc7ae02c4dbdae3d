"""Entry point (main.py calls run()): config, safe mode, crash guard, the node.

Never a boot loop:
  - an invalid config.json -> safe mode: the reasons are printed and written to
    safe_mode.txt, nothing else starts (no watchdog), the REPL and mpremote stay usable;
  - a service that crashes -> the ledger is saved (if it was loaded), the traceback goes to
    crash.txt, and the board restarts; after CRASH_LIMIT crashes in a row without
    CRASH_CLEAR_S of healthy running it stays in safe mode instead. The count is kept in
    crash.json and, when the filesystem refuses it, in RTC memory (continuous mode; sleep
    mode's RTC memory holds its state); where neither can hold it the restart waits
    CRASH_CLEAR_S first (a slow retry, never a tight loop).
"""
import asyncio
import json
import sys

from . import log

CRASH_FILE = "crash.txt"
CRASH_COUNT = "crash.json"
SAFE_FILE = "safe_mode.txt"
CRASH_LIMIT = 3
CRASH_CLEAR_S = 120


RTC_MAGIC = b"RBC"       # the crash count in RTC memory: magic + one byte


def _write(path, text):
    try:
        with open(path, "w") as f:
            f.write(text)
        return True
    except OSError:
        return False


def _remove(path):
    import os
    try:
        os.remove(path)
    except OSError:
        pass


def safe_mode(reasons):
    """Report why the node does not start, and return to the REPL."""
    text = "\n".join(reasons)
    print("=" * 60)
    print("rbnode SAFE MODE: the node is not measuring. Reason(s):")
    for r in reasons:
        print("  - " + r)
    print("Fix config.json (e.g. with mpremote), then reset the board.")
    print("=" * 60)
    _write(SAFE_FILE, text + "\n")
    _update_failed("safe mode: " + reasons[0])
    return reasons


def _update_failed(reason):
    """A version on trial that cannot run goes back to the one before (rbboot resets)."""
    try:
        import rbboot
    except ImportError:
        return
    rbboot.failed(reason)


def _crashes(board, cfg):
    """Crashes in a row: crash.json, or RTC memory when that is where it was counted."""
    n = 0
    try:
        with open(CRASH_COUNT) as f:
            n = int(json.load(f).get("n", 0))
    except Exception:  # noqa: BLE001 - missing, unreadable, any garbage: no count
        pass
    mem = _rtc_count(board, cfg)
    if mem is not None and mem[:3] == RTC_MAGIC and len(mem) == 4:
        n = max(n, mem[3])
    return n


def _rtc_count(board, cfg, data=None):
    """RTC memory for the crash count (continuous mode only): its bytes, or True once data
    is written; None where there is none."""
    if cfg["mode"] != "continuous" or board is None:
        return None
    try:
        mem = board.rtc_memory()
        if mem is None or data is None:
            return mem
        board.rtc_memory(data)
        return True
    except Exception:  # noqa: BLE001
        return None


def _clear_crashes(board, cfg):
    _remove(CRASH_COUNT)
    mem = _rtc_count(board, cfg)
    if mem and mem[:3] == RTC_MAGIC:
        _rtc_count(board, cfg, b"")


BOOT_ONLY = ("pins", "config", "schema", "jsoncheck", "names")


def load_config(path):
    """The checked config. The checker and its tables are needed at boot only: dropped
    from the heap afterwards (about 4 KB on a chip; a later user imports them again)."""
    from . import config as _config
    from . import pins
    cfg, errs = _config.load(path, pins.this_board())
    if errs and "file not found" in errs[0]:
        log.warning("config", "%s; running with defaults (modules found on the bus, no network)",
                    errs[0])
        cfg, errs = _config.check({})
    from rbnode import forget
    for name in BOOT_ONLY:
        forget(name)
    return cfg, errs


def run(path="config.json", board=None):
    """Start the node. Returns only in safe mode or after Ctrl-C (list of reasons / None)."""
    cfg, errs = load_config(path)
    if errs:
        return safe_mode(errs)
    _remove(SAFE_FILE)
    log.set_level(cfg["log_level"])
    from .board import Board
    from .node import Node
    try:
        board = board or Board(cfg["i2c"])
    except (OSError, ValueError) as e:
        return _hardware_failed(e)
    n = _crashes(board, cfg)
    if n >= CRASH_LIMIT:
        try:
            with open(CRASH_FILE) as f:
                last = f.read().strip().split("\n")[-1]
        except OSError:
            last = "?"
        return safe_mode(["the node crashed %d times in a row (last: %s); see %s. Delete %s "
                          "to try again." % (n, last, CRASH_FILE, CRASH_COUNT)])
    try:
        node = Node(cfg, board)
    except (OSError, ValueError) as e:   # e.g. pins the chip does not have
        return _hardware_failed(e)
    if cfg["mode"] == "sleep":
        return _sleep_mode(node, board, n)

    def continuous():
        node.start()
        net = _network(node, cfg)
        if net is None:
            node.hub.no_reader()
        asyncio.run(_main(node, n, net))
    _supervised(node, board, n, continuous)
    return None


def _hardware_failed(e):
    return safe_mode(["hardware setup failed: %s (check i2c.sda, i2c.scl, i2c.id and "
                      "drdy_pin in config.json)" % (e,)])


def _supervised(node, board, crashes, main):
    """(True, main()) when it returns. Ctrl-C saves the ledger and stops; any other
    exception (the last line of defence) is recorded, the ledger saved, the board reset."""
    try:
        return True, main()
    except KeyboardInterrupt:
        log.info("node", "stopped (%s)", "ledger saved" if node.save() else
                 "the ledger could NOT be saved: see above")
    except Exception as e:  # noqa: BLE001
        if not _crashed(node, e, crashes):
            _hold_off(board)
        board.reset()
    return False, None


def _sleep_mode(node, board, crashes):
    """One wake of the battery logger, then deep sleep. A wake that completes is a healthy
    run: it clears the crash count."""
    board.watchdog(node.cfg["watchdog_s"])      # a wake that hangs is reset
    ok, sleep = _supervised(node, board, crashes, lambda: asyncio.run(_wake(node, board)))
    if not ok:
        return None
    if crashes:
        _clear_crashes(board, node.cfg)
    ms, pin = sleep
    log.info("sleep", "sleeping %d ms%s", ms, "" if pin is None else
             ", or until GPIO %d goes LOW" % pin)
    board.deepsleep(ms, pin)


async def _wake(node, board):
    """The energy cycle (sleeper.py), the early-wake line released (wakeline.py), then the
    network step (wakenet.py) within sleep.awake_s, and a trial's outcome (ota/update.py);
    kept awake while the stay_awake flag is on or an update runs. Returns (ms to sleep, the
    pin that may end the sleep early or None)."""
    from time import ticks_diff, ticks_ms
    from .sleep.sleeper import Sleeper
    from .sleep.wakeline import WakeLine
    cfg = node.cfg
    node.tasks.spawn(_feed(board))
    sleeper = Sleeper(node)
    await sleeper.cycle()
    line = WakeLine(board, cfg["sleep"], early=sleeper.cause == "deepsleep" and
                    board.wake_reason() == "pin")
    line.disarm(sleeper.members, node.hub)
    net = _wake_network(node, cfg, sleeper)
    if net is None:
        pin = line.arm(sleeper.members)
        return sleeper.sleep_ms(), pin
    budget = cfg["sleep"]["awake_s"] * 1000
    t = ticks_ms()
    day = max(1, 86400 // cfg["period_s"])      # discovery: after a cold boot, then daily
    await net.deliver(budget, discovery=cfg["mqtt"]["discovery"] and (
        not sleeper.restored or sleeper.wakes % day == 0))
    if sleeper.sync_due() and await node.clock.sync():
        sleeper.synced = board.rtc_ms()
        sleeper.next_due()                         # the next wake by the synced clock
        sleeper.keep()
    if sleeper.unchecked and net.pub.reconciled and \
            not net.pub.floors.pending(node.meters, node.ledger):
        sleeper.unchecked = False                  # the broker's floors are passed
        sleeper.keep()
    up = net.pub.updater
    await _ota_at_wake(net, up, board, budget)
    while await _stay(node, up, sleeper.sleep_ms()):  # False: released, it sleeps now
        await sleeper.cycle()
        line.early = False                       # a whole period went by awake
        t = ticks_ms()
        await net.deliver(budget)
        await _ota_at_wake(net, up, board, budget)
    await net.close(max(500, budget - ticks_diff(ticks_ms(), t)))
    log.info("sleep", "wake #%d: %d record(s) delivered, %d in the backlog, awake %d ms",
             sleeper.wakes, net.sent, len(net.backlog), ticks_diff(ticks_ms(), sleeper.t0))
    pin = line.arm(sleeper.members)
    return sleeper.sleep_ms(), pin


def _awake_why(node, up):
    """Why a sleep-mode wake stays up: the stay_awake flag, an update under way; or None."""
    if node.stay_awake:
        return "stay_awake flag"
    if up is not None and up.busy():
        return "an update is %s" % up.state
    return None


async def _stay(node, up, ms):
    """Awake for ms (the next period); False as soon as nothing keeps the node up (it
    sleeps at once)."""
    from time import ticks_diff, ticks_ms
    t, why = ticks_ms(), None
    while ticks_diff(ticks_ms(), t) < ms:
        now = _awake_why(node, up)
        if not now:
            return False
        if now != why:
            why = now
            log.info("sleep", "staying awake (%s): next period in %d ms", why,
                     ms - ticks_diff(ticks_ms(), t))
        await asyncio.sleep_ms(min(250, max(1, ms - ticks_diff(ticks_ms(), t))))
    return True


async def _ota_at_wake(net, up, board, budget_ms):
    """A version on trial in sleep mode: kept or rolled back at this wake (update.py), the
    outcome on the broker before the sleep."""
    if up is None:
        return
    if up.at_wake(board.rtc_ms()):
        await up.restart()                       # the version before, now
    if net.link.online:
        try:
            await asyncio.wait_for_ms(net.link.flushed(), budget_ms)
        except asyncio.TimeoutError:
            pass


async def _feed(board):
    """The watchdog, fed while the event loop runs (a blocking call that hangs is reset)."""
    while True:
        board.feed()
        await asyncio.sleep(1)


def _wake_network(node, cfg, sleeper):
    """The network step of a wake (wakenet.py)."""
    def make():
        from .sleep.backlog import Backlog
        from .sleep.wakenet import WakeNet
        net = WakeNet(node, cfg, Backlog("backlog.jsonl", cfg["sleep"]["backlog"]),
                      reconcile=sleeper.unchecked)
        if cfg["ota"]["enabled"] or _in_trial():
            from .ota.update import Updater
            net.pub.updater = Updater(node, net.pub, cfg, sleeper.save)
        return net
    return _mqtt_service(cfg, make, "totals are kept on the device")


def _mqtt_service(cfg, make, otherwise):
    """make() when mqtt.host is set; None (with the reason) when there is no MQTT."""
    if not cfg["mqtt"]["host"]:
        log.info("node", "mqtt.host not set: no network, %s", otherwise)
        return None
    try:
        return make()
    except ImportError as e:
        log.error("node", "MQTT unavailable (%s): install mqtt_as (see README); %s", e, otherwise)
    except ValueError as e:            # the CA file: missing, unreadable, not a certificate
        log.error("node", "%s: no MQTT until config.json or the file is fixed; %s", e, otherwise)
    return None


def _network(node, cfg):
    """The MQTT service, when mqtt.host is set (else the node only measures)."""
    def make():
        from .net.publisher import Publisher
        return Publisher(node, cfg)
    net = _mqtt_service(cfg, make, "measuring only")
    if net is None:
        return None

    async def bound(why):
        action = cfg["link"]["action"]
        if action == "none":
            return
        node.save()
        log.error("node", "offline too long (%s): %s", why,
                  "resetting" if action == "reset" else "sleeping")
        if action == "reset":
            node.board.reset()
        else:
            node.board.deepsleep(cfg["period_s"] * 1000)
    net.on_bound_action = bound
    node.online = lambda: net.link.online
    if cfg["ota"]["enabled"] or _in_trial():
        from .ota.update import Updater
        net.updater = Updater(node, net, cfg)
    return net


def _in_trial():
    """A version on trial runs (its trial must be watched even with ota.enabled off).
    rbboot is loaded only where an update was ever installed, and not kept."""
    import os
    try:
        os.stat("ota/state")
    except OSError:
        return False
    import rbboot
    try:
        return rbboot.in_trial()
    finally:
        sys.modules.pop("rbboot", None)


async def _main(node, crashes, net=None):
    node.tasks.spawn(_healthy_after(node, crashes))
    if net is not None:
        net.start()
        if net.updater is not None:
            net.updater.start()
    await node.run()


async def _healthy_after(node, crashes):
    if crashes:
        await asyncio.sleep(CRASH_CLEAR_S)
        _clear_crashes(node.board, node.cfg)


def _crashed(node, exc, n):
    """Record a crash. False when the count could be kept nowhere."""
    import io
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    tb = buf.getvalue()
    print(tb)
    log.error("node", "crashed: %r; saving the ledger and restarting", exc)
    try:
        node.save()                      # never over the flash copy if it was not loaded
    except Exception as e:  # noqa: BLE001
        log.error("node", "ledger save after the crash failed: %r", e)
    _write(CRASH_FILE, tb)
    if _write(CRASH_COUNT, json.dumps({"n": n + 1})):
        return True
    if _rtc_count(node.board, node.cfg, RTC_MAGIC + bytes((min(n + 1, 255),))) is not None:
        log.error("node", "crash count not writable on the filesystem: kept in RTC memory")
        return True
    return False


def _hold_off(board):
    """The crash could not be counted: wait before the restart (the watchdog fed), so a
    crash at every start is a slow retry, not a boot loop."""
    import time
    log.error("node", "the crash count cannot be written (filesystem?): restarting in %d s",
              CRASH_CLEAR_S)
    for _ in range(CRASH_CLEAR_S):
        board.feed()
        time.sleep(1)
