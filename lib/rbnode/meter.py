"""One module as the node sees it: driver object, identity, settings, RT integration.

Energy per channel comes from two sources that never overlap:
  - import: the module's period latch (exact, survives lost RT reads). Between latches the
    node also integrates RT power into a *shadow*; it is used only for a period the module
    lost (reboot, unreadable snapshot), and discarded when the latch delivers.
  - export: signed RT power integrated on the node (page 0 has no export averages, §1.2,
    §3.14), when the module is configured `bidirectional`.
"""
from time import ticks_add, ticks_diff, ticks_ms

from rbamp import (CT_RATINGS, RT_WINDOW_MS as W, RbAmp, RbAmpError, RbAmpEvent,
                   RbAmpParamError, RbAmpSensorClass)
from rbamp.energy import to_mw
from rbamp.rt import F_P

from . import log
from .config import CT_AMPS
from .events import StepDetector
from .integrate import GAP_MS, Accumulators, f32_mw

BLACKOUT_MS = 350   # no RT block for longer than this: at least one window missed
EARLY_MS = 10       # a window's stamp is never before its commit: tick rounding, drift

TIERS = ("basic", "standard", "pro")


class Meter:
    def __init__(self, spec, i2c, tries, events_cfg):
        self.spec = spec
        self.addr = spec["address"]
        self.id = spec["id"]              # topics, commands, health, logs: [a-z0-9_-]
        self.label = spec["name"]         # shown in Home Assistant: any text
        self.i2c = i2c
        self.tries = tries
        self.dev = None
        self.uid = None
        self.key = None           # ledger key: the UID (address only for legacy firmware)
        self.state = "missing"
        self.problem = "not detected yet"
        self.channels = 0
        self.has_energy = False   # voltage variant: P and period averages exist
        self.export = spec["bidirectional"]
        self.acc = Accumulators(6)         # 2*ch: import shadow, 2*ch+1: export
        self.since = Accumulators(3)       # import shadow since the last RT blackout
        self.blackout = [0, 0]             # its start and end (booking time, ticks_ms)
        self.held = [0, 0, 0]              # power held through it, mW
        # the three as they were at the last latch: the period being booked is judged by
        # them (samples go on between the latch and the booking of its snapshot)
        self.at_latch = [0, 0, 0, 0, 0, 0, 0, 0]  # blackout[2], since µWh[3], held[3]
        self.t_read = 0
        self.c_last = 0
        self.closed = [0, 0, 0]            # µWh shadow of latched periods not confirmed yet
        self.p = [0, 0, 0]                 # last RT power, mW
        self.f = None                      # AC frequency, Hz, and reactive power, var:
        self.q = [None, None, None]        # read_slow(), outside the RT block
        self.t_rt = 0
        self.have_t = False
        self.lag = 210                     # ms from a window's start to our read of it
        self.fails = 0                     # RT reads failed in a row
        self.use_seq = False               # v1.3: the digest's SEQ tells which window is new
        self.seq = -1                      # SEQ of the window read last (-1: none)
        self.seq_new = -1                  # SEQ of the window being read
        self.digest_off = 0                # header READY clear but STATUS.READY set, in a row
        self.restarted = False             # SEQ or READY says the module restarted
        self.restarts = 0
        self.rem = [0, 0, 0]               # latched import remainders, mW x µs
        self.cal_dt = 0                    # master ms and RT windows of good periods:
        self.cal_n = 0                     # the module's window length on the master clock
        self.count_mismatch = 0
        self.slept = False                 # sleep mode: no RT shadow, the RTC as master clock
        self.samples = 0
        self.read_errors = 0
        self.gap_ms = 0
        self.detects = 0
        self.reboots_seen = 0
        self.retry_at = ticks_add(ticks_ms(), 15000)   # when a missing module is tried again
        e = events_cfg
        self.steps = StepDetector(3, e["threshold_w"], e["threshold_pct"], e["settle_windows"])
        self.on_event = None      # fn(meter, ch, before_mw, after_mw), set by the node

    # ---- detection and settings ------------------------------------------------------------
    def detect(self, keep_reset=False):
        """Find the module, read its identity, apply the configured settings. True if ok.
        keep_reset: leave EVENT_FLAGS.RESET set (a deep-sleep wake: the latch tells whether
        the module rebooted while the node slept)."""
        self.detects += 1
        dev = RbAmp(self.i2c, self.addr, tries=self.tries, variant=self.spec["variant"])
        try:
            dev.begin(prime=False)
        except RbAmpError as e:
            self.state, self.problem = "missing", str(e)
            return False
        except ValueError as e:      # legacy firmware without "variant" in the config
            self.state, self.problem = "error", str(e)
            return False
        try:
            v13 = dev.firmware_version >= 4
            self.uid = dev.read_uid().hex() if v13 else None
            if v13 and not keep_reset:
                dev.clear_event_flags(RbAmpEvent.RESET)   # from now on a set bit means a reboot
                dev.set_event_mask(0)   # no alarm armed by sleep mode holds the DRDY line
            self._check_identity(dev)
            self._apply(dev)
        except RbAmpError as e:
            self.state, self.problem = "missing", "0x%02x: %s" % (self.addr, e)
            return False
        self.key = self.uid or "addr%02x" % self.addr
        self.dev = dev
        self.reboots_seen = 0
        self.channels = dev.channels
        self.has_energy = dev.has_voltage()
        self.have_t = False
        self.use_seq, self.seq, self.restarted = v13, -1, False
        self.state, self.problem = "ok", ""
        log.info("meter", "%s: %s at 0x%02x, protocol v1.%d, %s tier, uid %s, CT %s", self.id,
                 dev.variant_name(), self.addr, dev.firmware_version - 1, self.tier_name(),
                 self.uid or "- (legacy)", self.ct_text())
        return True

    def tier_name(self):
        return TIERS[self.dev.tier & 3] if self.dev and self.dev.tier & 8 else "unknown"

    def ct_text(self):
        """The CT models for the log ("?" when unknown: legacy firmware, a bus error)."""
        d = self.dev
        if not d or d.firmware_version < 4:
            return "?"
        try:
            return "/".join("%sA" % CT_RATINGS.get(d.read_ct_model_ch(c), "-")
                            for c in range(d.channels))
        except RbAmpError:
            return "?"

    def _check_identity(self, dev):
        want = self.spec["uid"]
        if want and self.uid and want != self.uid:
            log.warning("meter", "%s: the module at 0x%02x has uid %s, config.json expects %s: "
                        "counting it as a new meter", self.id, self.addr, self.uid, want)
        tier = self.spec["tier"]
        if tier != "auto" and dev.tier & 8 and TIERS[dev.tier & 3] != tier:
            log.warning("meter", "%s: config.json says tier %s, the module reports %s",
                        self.id, tier, TIERS[dev.tier & 3])

    def _apply(self, dev):
        """config.json's CT models (and so the class SCT_013), where they differ."""
        spec = self.spec
        want = [(ch, a) for ch, a in enumerate(spec["ct"]) if a is not None]
        if spec["sensor_class"] is None and not want:
            return
        try:
            self.set_ct(want, dev)
        except RbAmpParamError as e:
            log.error("meter", "%s: CT setting refused (%s); measuring with the module's own "
                      "setting", self.id, e)

    def set_ct(self, pairs, dev=None):
        """[(channel, rated A)]: the class SCT_013 first (§9.1: class first; the only class
        with characterised CT models), then each model, written only where they differ and
        saved once. Returns True if the module changed (the set_ct command too)."""
        dev = dev or self.dev
        changed = dev.set_sensor_class(RbAmpSensorClass.SCT_013, save=False) \
            if dev.firmware_version >= 3 else False
        for ch, amps in pairs:
            if ch >= dev.channels:
                log.warning("meter", "%s: ct[%d] set but the module has %d channels",
                            self.id, ch, dev.channels)
                continue
            changed = dev.set_ct_model_ch(ch, CT_AMPS[amps], save=False) or changed
        if changed:
            dev.save_user_config()
            log.info("meter", "%s: sensor class / CT models written and saved", self.id)
        return changed

    def lost(self, why):
        self.state, self.problem = "missing", why
        self.dev = None
        self.have_t = False

    # ---- RT samples (hot path: no allocation) -----------------------------------------------
    def fresh(self, late):
        """RT windows the module committed since the one read last: 0 none (on a shared
        DRDY line the edge was another module's), -1 the bus failed. v1.3 firmware: from
        the digest's SEQ (2 bytes); older firmware: always 1.
        A SEQ that does not fit the time since the last window read, or READY clear, means
        the module restarted: a fast reboot leaves no gap in its edges. That time is taken
        from the last window's stamp, which may be up to `late` ms after its commit (an IRQ
        held off, a poll): k windows fit an elapsed time el when
        (el - EARLY_MS) // 200 <= k <= (el + late) // 200, two values of the 256 a restarted
        SEQ can take when EARLY_MS + late < 200."""
        if not self.use_seq:
            return 1
        try:
            s = self.dev.read_seq()
            if s < 0 and self.dev.is_ready():
                self._digest_off()
                return 1
        except RbAmpError:
            self.read_errors += 1
            self.fails += 1
            return -1
        self.digest_off = 0
        if s < 0:                      # booted, no window yet
            self._restart()
            self.seq = -1
            return 0
        if s == self.seq:
            return 0
        k = 1
        if self.seq >= 0:
            k = (s - self.seq) & 0xFF
            el = ticks_diff(ticks_ms(), self.t_read)
            if self.have_t and not (el - EARLY_MS) // W <= k <= (el + late) // W:
                self._restart()
        self.seq_new = s
        return k

    def _restart(self):
        if not self.restarted:
            self.restarted = True
            self.restarts += 1

    def _digest_off(self):
        """The digest header reads 'not ready' while the module measures: this firmware
        serves no digest without DIGEST_CONFIG. Three in a row: stop asking."""
        self.digest_off += 1
        if self.digest_off >= 3:
            self.use_seq = False
            log.warning("meter", "%s: no SEQ in the digest window; every DRDY edge reads the "
                        "RT block", self.id)

    def read(self):
        """Read the RT block; False (counted) when the bus or the module failed. After a
        failure the module may have restarted: its RT block counts once STATUS.READY."""
        try:
            if self.fails and not self.use_seq and not self.dev.is_ready():
                return False
            self.dev.read_rt()
            self.fails = 0
            self.seq = self.seq_new
            return True
        except RbAmpError:
            self.read_errors += 1
            self.fails += 1
            return False

    def sample(self, t):
        """Account the RT block read at ticks_ms t. Its power is the average of the window
        that began `lag` ms earlier, so that is the time it is booked from."""
        e = ticks_add(t, -self.lag)
        if self.have_t and (self.restarted or ticks_diff(t, self.t_read) > BLACKOUT_MS):
            self._blackout(e)
        else:
            self.advance(e)
        self.restarted = False
        self.t_read = t
        self.have_t = True
        buf = self.dev.rt.buf
        p = self.p
        steps = self.steps
        for ch in range(self.channels):
            mw = f32_mw(buf, 4 * (F_P + ch))
            p[ch] = mw
            if steps.update(ch, mw) and self.on_event is not None:
                self.on_event(self, ch, steps.before, steps.after)
        self.samples += 1

    def snapshot(self):
        """Sleep mode: the RT block (and the slow values) read once for the state message
        (the values at the wake), nothing integrated. False when it could not be read."""
        if not self.read():
            return False
        buf = self.dev.rt.buf
        for ch in range(self.channels):
            self.p[ch] = f32_mw(buf, 4 * (F_P + ch))
        self.read_slow()
        return True

    def read_slow(self):
        """Frequency and reactive power: registers apart from the RT block, for the state
        message. Read by the node at the state rate (Sampler.slow), never by the network
        side; a value that cannot be read is None."""
        d = self.dev
        if d is None:
            return
        try:
            self.f = d.read_frequency()
        except OSError:
            self.f = None
        for c in range(self.channels if self.has_energy else 0):
            try:
                self.q[c] = d.read_reactive_power(c)
            except OSError:
                self.q[c] = None

    def _blackout(self, e):
        """No RT block for a while, or a restart seen in SEQ: remember the span and the
        power held through it, and restart the shadow 'since'."""
        b = self.blackout
        b[0] = self.t_rt
        self.advance(e)
        b[1] = e
        a = self.since.a
        for i in range(len(a)):
            a[i] = 0
        for ch in range(3):
            self.held[ch] = self.p[ch]

    def advance(self, t):
        """Integrate the held power up to ticks_ms t."""
        if not self.have_t:
            self.t_rt = t
            return
        dt = ticks_diff(t, self.t_rt)
        if dt <= 0:
            return
        self.t_rt = t
        if dt > GAP_MS:
            self.gap_ms += dt     # power unknown for that long: not extrapolated
            return
        p = self.p
        acc = self.acc
        for ch in range(self.channels):
            mw = p[ch]
            if mw > 0:
                acc.add(2 * ch, mw, dt)
                self.since.add(ch, mw, dt)
            elif mw < 0 and self.export:
                acc.add(2 * ch + 1, -mw, dt)

    def settle(self):
        """Integrate up to the end of the last window read, not beyond: the window in
        progress is booked with its own power once it is read (extrapolating the held power
        into it misbooks a load change by up to a window)."""
        if self.have_t:
            self.advance(ticks_add(self.t_read, W - self.lag))

    # ---- period bookkeeping -------------------------------------------------------------------
    def latched_uwh(self, snap, count_only=False):
        """Import µWh per channel of a good period: average x the time of its RT windows.

        Each RT window lands in exactly one period, but a latch falls anywhere inside a
        window, so master dt and the windows' span differ by up to one window (±2 % of a
        10 s period). That error cancels only while the load stays the same, so the span is
        taken as COMMIT_CNT windows, 200 ms each on the module's crystal, rescaled to the
        master clock once an hour of periods has measured it (§7.1: one clock for all)."""
        n, dt = snap.commit_count, snap.dt_ms
        span_us = n * W * 1000
        if count_only:
            pass
        elif n <= 0 or abs(n * W - dt) > 2 * W + dt // (50 if self.slept else 200):
            self.count_mismatch += 1          # the count does not describe this period
            if not self.slept:                # (after a sleep: the RTC's error, ~1 %, or
                span_us = dt * 1000           # an anchor lost with RTC memory: the count)
        else:
            self.cal_dt += dt
            self.cal_n += n
            if self.cal_n >= 18000:
                ppm = (self.cal_dt * 1000000) // (self.cal_n * W) - 1000000
                ppm = max(-200, min(200, ppm))
                span_us = span_us * (1000000 + ppm) // 1000000
        out = [0, 0, 0]
        for ch in range(self.channels):
            mw = to_mw(snap.avg_power[ch])
            if mw > 0:
                out[ch], self.rem[ch] = divmod(self.rem[ch] + mw * span_us, 3600000)
        return out

    def last_commit(self, t):
        """Estimated master time of the module's last RT commit before ticks_ms t: a latch
        closes the windows committed so far, the one in progress goes to the next period."""
        if not self.have_t:
            return t
        c = ticks_add(self.t_read, W - self.lag)
        late = ticks_diff(t, c)
        return ticks_add(c, late - late % W) if late >= 0 else t

    def close_segment(self, t):
        """At a latch instant: the shadow up to the last commit belongs to the closed period."""
        self.c_last = self.last_commit(t)
        self.advance(self.c_last)
        for ch in range(self.channels):
            self.closed[ch] += self.acc.take_uwh(2 * ch)
        q = self.at_latch
        q[0], q[1] = self.blackout
        for ch in range(3):
            q[2 + ch] = self.since.peek_uwh(ch)
            q[5 + ch] = self.held[ch]

    def rebooted_uwh(self, snap):
        """Import µWh per channel of the period in which the module rebooted: the shadow up
        to its boot, plus its own windows since the boot (the snapshot of this latch).
        The boot is placed COMMIT_CNT windows before the latch; the shadow after it is what
        was integrated since the blackout plus the power held through the blackout."""
        shadow = self.take_closed()
        if self.slept:         # nobody watched: the module's own windows since its boot
            return self.latched_uwh(snap, count_only=True)
        n = snap.commit_count
        b0, b1 = self.at_latch[0], self.at_latch[1]
        boot = ticks_add(self.c_last, -n * W)
        if n <= 0 or ticks_diff(boot, b0) < -W or ticks_diff(boot, b1) > W:
            log.debug("meter", "%s rebooted at %d ms (%d windows before %d), not where it went "
                      "quiet (%d..%d ms): RT shadow only", self.id, boot, n, self.c_last, b0, b1)
            return shadow          # the boot is not where we saw the module go quiet
        own = self.latched_uwh(snap, count_only=True)
        held_ms = max(0, ticks_diff(b1, boot))
        log.debug("meter", "%s rebooted: quiet from %d to %d ms, boot at %d ms (%d windows "
                  "before %d), shadow %s, since %s, own %s", self.id, b0, b1, boot, n,
                  self.c_last, shadow, self.at_latch[2:5], own)
        for ch in range(self.channels):
            shadow[ch] = max(0, shadow[ch] - self._after_quiet(ch, held_ms)) + own[ch]
        return shadow

    def _after_quiet(self, ch, held_ms):
        """Shadow µWh integrated from the blackout to the latch, plus the power held through
        held_ms of it: what the shadow of a period holds after the module went quiet."""
        q = self.at_latch
        return q[2 + ch] + max(0, q[5 + ch]) * held_ms // 3600

    def swapped_uwh(self, snap):
        """A period in which another module took this one's place (a reboot with a new UID):
        (µWh per channel of the old module, of the new one). The old one's is the shadow up
        to where it went quiet (its last RT window read); the new one's its own windows since
        its boot. The span between is measured by nobody and is not invented."""
        shadow = self.take_closed()
        b0, b1 = self.at_latch[0], self.at_latch[1]
        quiet_ms = max(0, ticks_diff(b1, b0))
        old = [0, 0, 0]
        for ch in range(self.channels):
            old[ch] = max(0, shadow[ch] - self._after_quiet(ch, quiet_ms))
        return old, self.latched_uwh(snap, count_only=True)

    def replaced(self, uid):
        """Another module answers at this address: a new identity, the clock calibration
        and remainders start again, the configured settings are applied to it."""
        self.uid = self.key = uid
        self.cal_dt = self.cal_n = 0
        self.rem = [0, 0, 0]
        self.reboots_seen = self.dev.module_reboots
        try:
            self._apply(self.dev)
        except RbAmpError as e:
            log.warning("meter", "%s: settings not applied to the new module (%s)", self.id, e)

    def take_closed(self):
        """The shadow import of the closed period(s), µWh per channel; cleared."""
        out = self.closed[:]
        self.closed[0] = self.closed[1] = self.closed[2] = 0
        return out

    def take_unbooked(self):
        """[(import µWh, export µWh)] per channel not booked yet (shadow of closed and open
        periods, export); all cleared. For a module that left the bus."""
        closed = self.take_closed()
        return [(closed[ch] + self.acc.take_uwh(2 * ch),
                 self.take_export(ch) if self.export else 0) for ch in range(self.channels)]

    def take_export(self, ch):
        return self.acc.take_uwh(2 * ch + 1)

    def peek_export(self, ch):
        return self.acc.peek_uwh(2 * ch + 1)

    def provisional(self, ch):
        """Shadow import not yet confirmed by a latch (saved with the ledger, see ledger.py)."""
        return self.closed[ch] + self.acc.peek_uwh(2 * ch)
