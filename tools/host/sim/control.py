"""JSON control requests of the simulator: what tests and the host board ask the world.
Each handler runs with the world lock held and returns a dict (merged into {"ok": true})."""
from . import make_module

from .loads import Switch, channel_from_spec
from .measure import window_start


class Control:
    def __init__(self, server):
        self.srv = server
        self.bus = server.bus

    def handle(self, req):
        op = req.get("op")
        fn = getattr(self, "op_" + str(op), None)
        if fn is None:
            return {"ok": False, "error": "unknown op %r" % (op,)}
        args = dict(req)
        args.pop("op")
        now = self.srv.clock.now_us()
        self.bus.advance(now)
        out = fn(**args) or {}
        out["ok"] = True
        return out

    def _module(self, module):
        for m in self.bus.modules:
            if module in (m.name, m.bus_address, m.active_address()):
                return m
        raise ValueError("no module %r (have %s)" % (module, [m.name for m in self.bus.modules]))

    # ---- world and time ----------------------------------------------------------------
    def op_ping(self):
        return {}

    def op_time(self):
        t = self.srv.clock.now_us()
        # epoch_us: an integer, which a float32 MicroPython build reads exactly (a float
        # epoch in float32 has a 128 s step)
        return {"t_us": t, "epoch": self.srv.epoch0 + t / 1e6,
                "epoch_us": int(round(self.srv.epoch0 * 1e6)) + t}

    def op_fast_forward(self, ms):
        """Skip world time (a node in deep sleep): modules keep measuring meanwhile."""
        self.srv.clock.fast_forward(int(ms * 1000))
        self.bus.advance(self.srv.clock.now_us())
        self.bus.take_edges()
        return self.op_time()

    def op_wifi(self, up=None, rssi=None):
        """The access point as the node sees it; up_for_ms lets a WLAN model association."""
        w = self.srv.wifi
        now = self.srv.clock.now_us()
        if up is not None and bool(up) != w["up"]:
            w["up"] = bool(up)
            w["since_us"] = now
        if rssi is not None:
            w["rssi"] = int(rssi)
        return {"up": w["up"], "rssi": w["rssi"], "up_for_ms": (now - w["since_us"]) // 1000
                if w["up"] else 0}

    def op_pin_level(self, pin):
        return {"level": self.bus.line_level(pin)}

    # ---- introspection -----------------------------------------------------------------
    def op_modules(self):
        out = []
        for m in self.bus.modules:
            out.append({"name": m.name, "address": m.active_address(), "variant": m.variant,
                        "channels": m.n_i, "powered": m.powered, "plugged": m.plugged,
                        "boots": m.boots, "flash_writes": m.flash.writes, "uid": m.uid.hex(),
                        "events": m.events if m.powered else None,
                        "drdy_pin": self.bus.drdy.get(m), "last_commit_us": m.last_commit})
        return {"modules": out}

    def op_truth(self):
        """Ground truth per module and channel: [[import_wh, export_wh], ...]; at_latch:
        the import Wh per channel when the module's last good period latch closed."""
        return {"truth": {m.name: [list(m.truth_wh(ch)) for ch in range(m.n_i)]
                          for m in self.bus.modules},
                "at_latch": {m.name: m.truth_at_latch for m in self.bus.modules},
                "t_us": max([m.truth_t for m in self.bus.modules] or [0])}  # integrated to

    def op_counters(self, reset=False):
        out = {"%d" % a: c.as_dict() for a, c in self.bus.counters.items()}
        edges = dict(("%d" % k, v) for k, v in self.srv.edge_counts.items())
        if reset:
            self.bus.counters.clear()
            self.srv.edge_counts.clear()
        return {"counters": out, "edges": edges, "freq": self.bus.freq}

    # ---- loads and faults --------------------------------------------------------------
    def op_set_load(self, module, ch, load, pf=None, capacitive=False):
        m = self._module(module)
        if not 0 <= ch < m.n_i:
            raise ValueError("module %s has channels 0..%d, got %r" % (m.name, m.n_i - 1, ch))
        spec = {"load": load, "pf": 1.0 if pf is None else pf, "capacitive": capacitive}
        new = channel_from_spec(spec)
        # the open window keeps the old load up to now
        t = self.srv.clock.now_us()
        old = m.channels[ch].profile
        if isinstance(old, Switch) and old.at <= window_start(m):
            old = old.after                  # an earlier change no open window needs
        new.profile = Switch(old, new.profile, t)
        m.channels[ch] = new
        return {}

    def op_set_mains(self, volts=None, hz=None):
        if volts is not None:
            self.bus.mains.volts = float(volts)
        if hz is not None:
            self.bus.mains.hz = float(hz)
        return {}

    def op_faults(self, nack=None, ghost=None, emi_s=None, hang=None, hang_ms=None, seed=None):
        f = self.bus.faults
        if nack is not None:
            f.nack = float(nack)
        if ghost is not None:
            f.ghost = ghost
        if hang is not None:
            f.hang = float(hang)
        if hang_ms is not None:
            self.srv.hang_ms = int(hang_ms)
        if seed is not None:
            f.seed = int(seed) or 1
        if emi_s is not None:  # [duration_s, probability] starting now
            now = self.srv.clock.now_us()
            f.emi = (now, now + int(emi_s[0] * 1e6), float(emi_s[1]))
        return {"nack": f.nack, "ghost": f.ghost, "hang": f.hang}

    def op_module_fault(self, module, action, value=None):
        """reboot | power_cycle (value = off ms) | unplug | replug | stuck | unstuck |
        empty_latch (the next `value` latches are empty, as in the race of §7.5) |
        drift (value = ppm) | gain_error (value = fraction)."""
        m = self._module(module)
        t = self.srv.clock.now_us()
        if action == "reboot":
            m.reboot(t)
        elif action == "power_cycle":
            self.bus.power_cycle(m, int((value or 0) * 1000))
        elif action == "unplug":
            self.bus.unplug(m)
        elif action == "replug":
            self.bus.replug(m)
        elif action == "empty_latch":
            m.empty_latches += int(value or 1)
        elif action in ("stuck", "unstuck"):
            m.stuck = action == "stuck"
        elif action == "drift":
            m.drift_ppm = float(value)
            m.window_us = int(200000 / (1.0 + m.drift_ppm * 1e-6))
        elif action == "gain_error":
            m.gain_error = float(value)
        else:
            raise ValueError("unknown module action %r" % (action,))
        return {}

    def op_add_module(self, spec):
        m = make_module(spec, self.bus.mains)
        self.bus.add(m, spec.get("drdy_pin"))
        return {"name": m.name}



