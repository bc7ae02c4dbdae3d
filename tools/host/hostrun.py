"""Run the node firmware on the MicroPython unix port against the rbAmp simulator (tools/host/sim).

    python tools/host/hostrun.py [--duration S] [--scenario FILE] [--config FILE]

Starts a private mosquitto (unless MQTT_HOST is set), the simulator, and the node (boot.py +
main.py in a simulated flash directory). A deep sleep ends the node process: the runner
fast-forwards the simulator by the sleep time and starts the node again as a deep-sleep wake;
machine.reset() and a watchdog bite restart it too, each with its reset cause.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tools.host import hostenv  # noqa: E402

PWRON, WDT, DEEPSLEEP, SOFT = 1, 3, 4, 5
EXT0_WAKE, TIMER_WAKE = 2, 4       # machine.wake_reason() after a deep sleep
PIN_STEP_MS = 200                  # a sleep with a wake pin: the line is checked this often
DEVICE = os.path.join(hostenv.HOSTBOARD, "_device.py")


class HostNode:
    """One simulated board: a flash directory (cwd of the node) and a board directory
    (RTC memory, reset cause). `boot()` runs the firmware once until it exits."""

    def __init__(self, run_dir, bench_addr, config=None, env=None, realtime_sleep=False,
                 bench_client=None, files=("boot.py", "main.py"), mp_args=(), ota=False):
        self.fs = os.path.join(run_dir, "fs")
        self.board = os.path.join(run_dir, "board")
        for d in (self.fs, self.board):
            os.makedirs(d, exist_ok=True)
        for f in files:  # names copied from the repo, or {name: text} for tests
            if isinstance(files, dict):
                with open(os.path.join(self.fs, f), "w") as out:
                    out.write(files[f])
            else:
                shutil.copy(os.path.join(hostenv.ROOT, f), self.fs)
        if config is not None:
            with open(os.path.join(self.fs, "config.json"), "w") as f:
                json.dump(config, f, indent=1) if isinstance(config, dict) else f.write(config)
        self.bench_addr = bench_addr
        self.bench = bench_client
        self.env = hostenv.node_env(bench_addr, self.board, env)
        self.realtime_sleep = realtime_sleep
        self.mp_args = list(mp_args)   # e.g. ["-X", "heapsize=64k"]
        self.proc = None
        self.during_sleep = None   # fn(ms) that fast-forwards the simulator itself (tests)
        self.cause = PWRON
        self.wake = 0      # machine.wake_reason() of the next start
        self.slept_ms = 0  # how long the last deep sleep lasted (simulated time)
        self.boots = []  # (reset cause, exit code, next_boot)
        self.flash = None  # ota: app partitions and their bootloader (tools/host/espboot.py)
        if ota:
            from tools.host.espboot import OtaFlash
            self.flash = OtaFlash(self.board)
            self.flash.create(hostenv.LIB)
        self.power_on()

    def power_on(self):
        """Cold power-up: RTC memory is lost, reset cause PWRON."""
        for f in ("rtc_memory", "rtc_offset", "next_boot", "mem_backup"):
            try:
                os.remove(os.path.join(self.board, f))
            except FileNotFoundError:
                pass
        self.cause = PWRON

    def start(self, stdout=None, stdin=None):
        for name, v in (("reset_cause", self.cause), ("wake_reason", self.wake)):
            with open(os.path.join(self.board, name), "w") as f:
                f.write(str(v))
        try:
            os.remove(os.path.join(self.board, "next_boot"))
        except FileNotFoundError:
            pass
        env = self.env
        if self.flash is not None:           # the bootloader picks the app partition
            app = self.flash.boot()
            if app is None:
                raise RuntimeError("the host bootloader found no bootable app partition")
            env = dict(env, MICROPYPATH=hostenv.micropypath(lib=app))
        self.proc = subprocess.Popen([hostenv.micropython()] + self.mp_args + [DEVICE],
                                     cwd=self.fs, env=env, stdin=stdin,
                                     stdout=stdout, stderr=subprocess.STDOUT)
        return self.proc

    def finish(self):
        """After the process ended: decide how the board comes back (None: it does not)."""
        rc = self.proc.returncode
        nb = ""
        p = os.path.join(self.board, "next_boot")
        if os.path.exists(p):
            with open(p) as f:
                nb = f.read().strip()
        self.boots.append((self.cause, rc, nb))
        self.wake = 0
        if nb.startswith("deepsleep"):
            w = nb.split()
            self.wake = self._sleep(int(w[1]), (int(w[3]), int(w[4])) if len(w) > 4 else None)
            self.cause = DEEPSLEEP
        elif nb == "reset":
            self.cause = SOFT
        elif nb == "wdt":
            self.cause = WDT
        else:
            return None
        return self.cause

    def _forward(self, ms):
        if self.during_sleep is not None:
            self.during_sleep(ms)
        elif self.realtime_sleep or self.bench is None:
            time.sleep(ms / 1000)
        else:
            self.bench.fast_forward(ms=ms)

    def _sleep(self, ms, ext0):
        """The deep sleep: ms of simulated time; with an ext0 (pin, level) it ends early once the
        bench holds that line at that level (checked every PIN_STEP_MS, and at once).
        Returns the wake reason; `slept_ms` says how long it was."""
        self.slept_ms = 0
        if ext0 is None or self.bench is None:
            self._forward(ms)
            self.slept_ms = ms
            return TIMER_WAKE
        pin, level = ext0
        while self.slept_ms < ms:
            if self.bench.pin_level(pin=pin)["level"] == level:
                return EXT0_WAKE
            k = min(PIN_STEP_MS, ms - self.slept_ms)
            self._forward(k)
            self.slept_ms += k
        return TIMER_WAKE

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


BENCH_SSID = "bench-ap"      # make run: the simulated WiFi when config.json names none


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=float(os.getenv("DURATION") or 0),
                    help="stop after this many seconds (default: run until Ctrl-C)")
    ap.add_argument("--scenario", default=None, help="simulator scenario: a name in tools/host/sim/scenarios or a JSON file")
    ap.add_argument("--config", default=None, help="config.json for the node")
    ap.add_argument("--run-dir", default=os.path.join(hostenv.ROOT, "build", "run"))
    ap.add_argument("--realtime-sleep", action="store_true",
                    help="deep sleep takes real time instead of fast-forwarding the simulator")
    a = ap.parse_args(argv)

    from tools.host.broker import Broker
    broker = None
    mqtt_host = os.getenv("MQTT_HOST")
    mqtt_port = int(os.getenv("MQTT_PORT") or 1883)
    if not mqtt_host:
        broker = Broker()
        mqtt_host, mqtt_port = broker.host, broker.port
        print("[run] private mosquitto on %s:%d" % (mqtt_host, mqtt_port))
    else:
        print("[run] using broker %s:%d" % (mqtt_host, mqtt_port))
    bench = hostenv.SimProcess(a.scenario)
    ctl = bench.client()
    mods = ctl.modules()["modules"]
    print("[run] simulator on %s:%d with %d modules: %s" % (bench.address + (len(mods), ", ".join(
        "%s 0x%02x" % (m["name"], m["address"]) for m in mods))))
    cfg_path = a.config or next((p for p in (os.path.join(hostenv.ROOT, "config.json"),
                                             os.path.join(hostenv.ROOT, "config.example.json"))
                                 if os.path.exists(p)), None)
    config = None
    if cfg_path:
        with open(cfg_path) as f:
            config = f.read()
        try:  # point the node at the broker of this run (the host stands in for the LAN)
            config = json.loads(config)
            config.setdefault("mqtt", {}).update(host=mqtt_host, port=mqtt_port)
            wifi = config.setdefault("wifi", {})
            if not wifi.get("ssid"):      # the host board's access point takes any name
                wifi["ssid"] = BENCH_SSID
                print("[run] wifi.ssid empty in %s: using the simulator's access point %r"
                      % (os.path.basename(cfg_path), BENCH_SSID))
            t = config.setdefault("time", {})
            if t.get("ntp", ["pool.ntp.org"]) == ["pool.ntp.org"]:   # the default: this LAN's
                from tools.host.ntpserver import NtpServer
                ntp = NtpServer("ok")
                t["ntp"] = ["127.0.0.1:%d" % ntp.port]
                print("[run] NTP server on 127.0.0.1:%d (time.ntp)" % ntp.port)
        except (ValueError, AttributeError):
            pass  # a broken config.json is the node's to report
    shutil.rmtree(a.run_dir, ignore_errors=True)
    base = (config.get("mqtt", {}).get("base_topic") if isinstance(config, dict) else None) \
        or "rbnode"
    live = LiveValues(mqtt_host, mqtt_port, base)
    node = HostNode(a.run_dir, bench.address, config,
                    env={"MQTT_HOST": mqtt_host, "MQTT_PORT": str(mqtt_port)},
                    realtime_sleep=a.realtime_sleep, bench_client=ctl)
    deadline = time.monotonic() + a.duration if a.duration else None
    truth0 = ctl.truth()["truth"]      # the node books from its first latch on
    truth1 = None
    stopped = False
    try:
        while True:
            proc = node.start()
            while proc.poll() is None:
                if deadline and time.monotonic() > deadline:
                    stopped = True
                    truth1 = ctl.truth()["truth"]     # the node stops measuring now
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(3)
                    except subprocess.TimeoutExpired:
                        node.kill()
                    break
                time.sleep(0.05)
            if stopped:
                break
            cause = node.finish()
            if cause is None:
                print("[run] node exited with code %d (a board would sit at the REPL)" %
                      proc.returncode)
                break
            print("[run] node restarts, reset cause %d" % cause)
    except KeyboardInterrupt:
        node.kill()
    finally:
        live.stop()
        summary(ctl, node, mods, truth0, truth1)
        bench.stop()
        if broker:
            broker.stop()
    return 0 if stopped or not node.boots or node.boots[-1][1] == 0 else 1


class LiveValues:
    """What the node publishes, as a user wants to read it: each module's state every
    EVERY_S seconds, one line (a paho subscriber beside the node, like a look at HA)."""
    EVERY_S = 10

    def __init__(self, host, port, base):
        import paho.mqtt.client as mqtt
        self.last = {}
        self.shown = {}
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = self._on
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(
            [(base + "/+/+/state", 0), (base + "/+/+/energy", 0)])
        try:
            self.c.connect(host, port)
            self.c.loop_start()
        except OSError:
            self.c = None

    def _on(self, client, userdata, m):
        mod, kind = m.topic.split("/")[-2:]
        now = time.monotonic()
        if now - self.shown.get((mod, kind), -1e9) < self.EVERY_S:
            return
        try:
            # energy totals as the node wrote them ("0.003570", not the float 0.00357)
            d = json.loads(m.payload, parse_float=str) if kind == "energy" else \
                json.loads(m.payload)
        except ValueError:
            return
        self.shown[(mod, kind)] = now
        if kind == "energy":
            print("[live] %s: energy %s" % (mod, " | ".join(
                "ch%d import %s kWh export %s kWh" % (ch, i, e)
                for ch, (i, e) in enumerate(zip(d["imp"], d["exp"])))), flush=True)
        else:
            print("[live] %s" % live_line(mod, d), flush=True)

    def stop(self):
        if self.c:
            self.c.loop_stop()
            self.c.disconnect()


def live_line(mod, d):
    """One state message as a line: "mains: 230.0 V 50.00 Hz | ch0 1500.0 W 6.52 A pf 1.00"."""
    head = " ".join(x for x in ("%.1f V" % d["u"] if d.get("u") is not None else "",
                                "%.2f Hz" % d["f"] if d.get("f") is not None else "") if x)
    chans = []
    for ch, i in enumerate(d.get("i", [])):
        parts = ["ch%d" % ch]
        if "p" in d:
            parts.append("%.1f W" % d["p"][ch])
        parts.append("%.3f A" % i if i is not None else "? A")
        if d.get("pf") and d["pf"][ch] is not None:
            parts.append("pf %.2f" % d["pf"][ch])
        chans.append(" ".join(parts))
    return "%s: %s | %s" % (mod, head or "-", " | ".join(chans))


def node_totals(node, mods):
    """{bench module name: [[import, export] Wh]} from the node's ledger (matched by address)."""
    from tools.host.nodefiles import read_ledger
    try:
        led = read_ledger(node.fs)
    except (OSError, ValueError):
        led = None
    if not led:
        return {}
    by_addr = {m["address"]: m["name"] for m in mods}
    return {by_addr.get(m["addr"], m["name"]): [[c[0] / 1e6, c[1] / 1e6] for c in m["ch"]]
            for m in led["meters"].values()}


def summary(ctl, node=None, mods=(), truth0=None, truth1=None):
    c = ctl.counters()
    print("[run] simulator: DRDY edges %s; I2C per address:" % (c["edges"] or "none"))
    quiet = [a for a, v in c["counters"].items() if v["bytes"] == 0]
    if quiet:
        print("[run]   %d addresses only NACKed (bus scan, absent modules)" % len(quiet))
    for addr, v in sorted(c["counters"].items(), key=lambda kv: int(kv[0])):
        if addr in quiet:
            continue
        print("[run]   0x%02x: %d transactions, %d bytes, %d NACKs, %.1f ms bus time at %d Hz"
              % (int(addr), v["transactions"], v["bytes"], v["nacks"], v["bus_us"] / 1000,
                 c["freq"]))
    ours = node_totals(node, mods) if node else {}
    if ours:
        print("[run] the node's totals (its ledger) beside the simulator's truth from the node's "
              "start to its stop (the ~1 s before its first latch is nobody's to book)")
    variants = {m["name"]: m.get("variant", 0) for m in mods}    # 4..6: I1..I3
    for name, chans in (truth1 or ctl.truth()["truth"]).items():
        # the truth over the node's life: what the simulator counted before its boot is not the
        # node's to book (its first latch is a primer); the same figures the difference uses
        base = (truth0 or {}).get(name, [[0, 0]] * len(chans))
        life = [[c[0] - b[0], c[1] - b[1]] for c, b in zip(chans, base)]
        print("[run]   truth %s: %s" % (name, ", ".join(
            "ch%d import %.4f Wh export %.4f Wh" % (i, imp, exp) for i, (imp, exp) in
            enumerate(life))))
        if name not in ours:
            continue
        if variants.get(name, 0) >= 4:
            print("[run]   node  %s: current only (an I variant measures no energy)" % name)
            continue
        print("[run]   node  %s: %s" % (name, ", ".join(
            "ch%d import %.4f Wh (%s) export %.4f Wh (%s)" % (
                i, imp, _diff(imp, life[i][0]), exp, _diff(exp, life[i][1]))
            for i, (imp, exp) in enumerate(ours[name][:len(chans)]))))


def _diff(v, truth):
    """The node's total against the simulator's truth over the node's life."""
    if truth < 1e-3:
        return "%+.4f Wh" % (v - truth)
    return "%+.2f %%" % ((v - truth) * 100 / truth)


if __name__ == "__main__":
    sys.exit(main())
