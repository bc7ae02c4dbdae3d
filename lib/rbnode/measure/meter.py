"""One module as the node sees it: driver object, identity, settings, its RT windows.

Energy per channel comes from two sources that never overlap:
  - import: the module's period latch (exact, survives lost RT reads). Between latches the
    node also integrates RT power into a *shadow* (shadow.py); it is used only for a period
    the module lost (reboot, unreadable snapshot), and discarded when the latch delivers.
    What a latch is worth: booking.py.
  - export: signed RT power integrated on the node (page 0 has no export averages, §1.2,
    §3.14), when the module is configured `bidirectional`.
Which windows are new (SEQ) is the sampler's (seq.py).
"""
from time import ticks_add, ticks_ms

from rbamp import (CT_CODES, CT_RATINGS, RbAmp, RbAmpError, RbAmpEvent, RbAmpParamError,
                   RbAmpSensorClass)
from rbamp.rt import F_P

from .. import log
from ..integrate import f32_mw
from .booking import Booking
from .events import StepDetector
from .shadow import Shadow

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
        self.shadow = Shadow(spec["bidirectional"])  # the RT windows integrated (import, export)
        self.booking = Booking(self.id)    # what a latched period is worth
        self.p = self.shadow.p             # last RT power, mW
        self.f = None                      # AC frequency, Hz, and reactive power, var:
        self.q = [None, None, None]        # read_slow(), outside the RT block
        self.demand_mw = None              # the last closed period's demand (calendar.py)
        self.max_p = None                  # and its largest RT window power, W (ch0)
        self.fails = 0                     # RT reads failed in a row
        self.samples = 0
        self.read_errors = 0
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
        dev = RbAmp(self.i2c, self.addr, tries=self.tries, variant=self.spec["variant"],
                    energy=False)         # the node books the periods itself (booking.py)
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
        self.channels = self.shadow.channels = self.booking.channels = dev.channels
        self.has_energy = dev.has_voltage()
        self.shadow.have_t = False
        self.state, self.problem = "ok", ""
        log.info("meter", "%s: %s at 0x%02x, protocol v1.%d, %s tier, uid %s, CT %s", self.id,
                 dev.variant_name(), self.addr, dev.firmware_version - 1, self.tier_name(),
                 self.uid or "- (legacy)", self.ct_text())
        return True

    @property
    def export(self):
        """Export is measured (config `bidirectional`): the shadow integrates it."""
        return self.shadow.export

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
            changed = dev.set_ct_model_ch(ch, CT_CODES[amps], save=False) or changed
        if changed:
            dev.save_user_config()
            log.info("meter", "%s: sensor class / CT models written and saved", self.id)
        return changed

    def lost(self, why):
        self.state, self.problem = "missing", why
        self.dev = None
        self.shadow.have_t = False

    # ---- RT samples (hot path: no allocation) -----------------------------------------------
    def read(self, seq_checked=False):
        """Read the RT block; False (counted) when the bus or the module failed. After a
        failure the module may have restarted: its RT block counts once STATUS.READY (or
        its SEQ, seq_checked, said a window is ready)."""
        try:
            if self.fails and not seq_checked and not self.dev.is_ready():
                return False
            self.dev.read_rt()
            self.fails = 0
            return True
        except RbAmpError:
            self.read_errors += 1
            self.fails += 1
            return False

    def sample(self, t, restarted=False):
        """Account the RT block read, stamped at ticks_ms t (restarted: SEQ says the module
        restarted before it). Its power is the average of the window that began
        `shadow.lag` ms earlier, so that is the time it is booked from."""
        self.shadow.window(t, restarted)
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
        message. Read by the node at the state rate (Sampler.read_slow), never by the network
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

    # ---- period bookkeeping -------------------------------------------------------------------
    def replaced(self, uid):
        """Another module answers at this address: a new identity, the clock calibration
        and remainders start again, the configured settings are applied to it."""
        self.uid = self.key = uid
        self.booking.restart()
        self.reboots_seen = self.dev.module_reboots
        try:
            self._apply(self.dev)
        except RbAmpError as e:
            log.warning("meter", "%s: settings not applied to the new module (%s)", self.id, e)

