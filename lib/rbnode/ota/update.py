"""The update, as the node runs it: the `ota` and `ota_rollback` commands, the download into
the inactive slot, the switch, and the trial of a new version.

    up = Updater(node, pub, cfg, save)  # the app makes it when ota.enabled, or in a trial
    up.start()                         # continuous mode, in a trial: watch it get healthy
    up.at_wake(rtc_ms)                 # sleep mode, after each wake's network step
    up.begin(url, version)             # the ota command: checks, then the download runs
    up.publish(last)                   # <base>/ota, retained (the HA update entity reads it)

save() keeps the energy (continuous mode: the ledger; sleep mode: the ledger and the RTC
state, sleeper.py): True only once the flash ledger is written. In sleep mode the app keeps
the node awake while busy() (the download runs between its periods), then it resets into
the new version like continuous mode.

The update: the slot the running version is not in is filled from the download
(bundle.install: streamed, each file's hash and the signature checked before its MANIFEST is
written); the ledger is saved (no switch without it); rbboot.switch makes it the active slot
in trial; the board resets. A firmware bundle (ESP32) fills the other app partition instead
(firmware.py), and the switch is rbboot.switch_firmware then Partition.set_boot. A failure
at any step leaves the running version as it was, with the reason on <base>/ota.

The trial (the new version, after the reset): healthy means every configured module measuring
(at least one), connected to the broker and one period closed with it, within ota.confirm_s;
then rbboot.confirm(). Otherwise, or when it crashes at boot ota.max_boots times (rbboot
counts), the previous version runs again, and says why on <base>/ota. Sleep mode decides at
each wake (one that booked its period and connected is healthy); deep-sleep wakes are not
boots, so confirm_s is counted on the RTC from the trial's first wake (rbboot.trial_since).
A new firmware's trial is the bootloader's: any reset before rbboot.confirm() goes back, so
it has one boot, and in sleep mode busy() keeps the node awake until it is decided.

<base>/ota: {"state": idle|downloading|rebooting|failed|trial|ok|rolled_back, "version" (running),
"target", "progress" (%), "error", "last" (rbboot's last result), "ha": {what HA's update
entity takes}}.
"""
import asyncio
import json

import rbboot

from .. import log
from ..version import VERSION
from .rsa import key_bytes

PROGRESS_STEP = 5           # % between progress messages
UNDER_WAY = ("downloading", "rebooting")     # what HA shows as in progress


class OtaError(Exception):
    pass


def _switch_firmware(part, version):
    """ota/state told, then the bootloader (ESP-IDF checks the image once more); None, or
    why not (the state as before)."""
    from esp32 import Partition  # pyright: ignore[reportMissingImports] (ESP32 only)
    rbboot.switch_firmware(part, version)
    try:
        Partition(part).set_boot()
    except OSError as e:
        rbboot.cancel_firmware()
        return "the bootloader refused the image in %s (set_boot: %s)" % (part, e)
    return None


class Updater:
    def __init__(self, node, net, cfg, save=None):
        self.node = node
        self.net = net
        self.save = save or node.save
        self.o = cfg["ota"]
        self.tasks = node.supervisor.group("ota")
        self.topic = net.base + "/ota"
        self.state = "idle"
        self.target = None
        self.progress = None
        self.error = None
        st = rbboot.state() or {}
        self.last = st.get("last")
        self.trial = st.get("trial")
        fw = rbboot.firmware_trial(st)
        if fw:                               # a new firmware: one boot to get healthy
            self.trial = {"version": fw.get("version"), "firmware": True}
        if self.trial:
            self.state = "trial"
            self.target = self.trial.get("version")
        elif self.last and self.last.get("result") in ("rolled_back", "slot_bad"):
            self.state = "rolled_back"
            self.error = self.last.get("reason")
        self._pct = -PROGRESS_STEP

    def start(self):
        if self.trial:
            self.tasks.start("trial", self._trial)

    # ---- status ------------------------------------------------------------------------------
    def status(self):
        busy = self.state in UNDER_WAY
        ha = {"installed_version": VERSION, "title": "rbnode",
              "latest_version": self.target if busy and self.target else VERSION,
              "in_progress": busy, "update_percentage": self.progress if busy else None}
        if self.error:
            ha["release_summary"] = ("%s: %s" % (self.state, self.error))[:255]
        return json.dumps({"state": self.state, "version": VERSION, "target": self.target,
                           "progress": self.progress, "error": self.error, "last": self.last,
                           "ha": ha})

    def publish(self, last=False):
        self.net.outbox.latest(self.topic, self.status(), True, 1, last)

    def _set(self, state, error=None, **kw):
        self.state, self.error = state, error
        for k, v in kw.items():
            setattr(self, k, v)
        self.publish()

    # ---- the update --------------------------------------------------------------------------
    def busy(self):
        """An update under way (sleep mode stays awake): a download, the restart, or a new
        firmware's trial (the bootloader's: a deep sleep before confirm() goes back)."""
        return self.state in UNDER_WAY or \
            (self.state == "trial" and self.trial.get("firmware") is True)

    def begin(self, url, version):
        """The ota command: refused (OtaError) or started; what it will do, for the result."""
        if self.state in UNDER_WAY:
            raise OtaError("an update to %s is running (%s)" % (self.target, self.state))
        if self.state == "trial":
            raise OtaError("version %s is in its trial: wait until it reported healthy "
                           "(or ota_rollback)" % VERSION)
        want = rbboot.version_key(version)
        if want is None:
            raise OtaError("version %r: of the form 1.2.3" % version[:32])
        run = rbboot.version_key(VERSION)
        if run is not None and want <= run:
            raise OtaError("version %s is not newer than the running %s (no downgrade; "
                           "ota_rollback goes back to the previous version)" % (version, VERSION))
        if rbboot.mpy_version() is None:
            raise OtaError("this firmware loads no .mpy files: update it by cable")
        from .http import HttpError, split_url
        try:
            split_url(url)
        except HttpError as e:
            raise OtaError(str(e))
        slot = "a" if rbboot.running()[0] == "b" else "b"
        self._pct = -PROGRESS_STEP
        self._set("downloading", target=version, progress=0)
        self.tasks.spawn(self._update(url, version, slot))
        return {"slot": slot, "from": VERSION, "to": version}

    def _progress(self, done, total):
        pct = done * 100 // total
        if pct >= self._pct + PROGRESS_STEP:
            self._pct = pct
            self.progress = pct
            self.publish()

    async def _update(self, url, version, slot):
        from .bundle import BundleError, install
        from .http import HttpError, get
        try:
            key = key_bytes(self.o["key"])
            body = await get(url, self._ca(), "rbnode/" + VERSION)
            try:
                head = await install(body, slot, key, VERSION, version, self._progress)
            finally:
                body.close()
        except (HttpError, BundleError, OSError, ValueError) as e:
            return self._failed(version, str(e) or repr(e))
        except Exception as e:  # noqa: BLE001 - e.g. MemoryError: never stuck "downloading"
            return self._failed(version, repr(e))
        if not self.save():
            return self._failed(version, "the energy ledger could not be saved: not switching "
                                "(see health storage)")
        part = head.get("partition")
        try:
            if part:
                why = _switch_firmware(part, head["version"])
                if why:
                    return self._failed(version, why)
                slot = "partition " + part
            else:
                rbboot.switch(slot, head["version"], self.o["max_boots"])
                slot = "slot " + slot
        except OSError as e:                   # the state is the old one, or the new one
            return self._failed(version, "ota/state not written (%s): not switching" % (e,))
        log.info("ota", "version %s installed in %s: restarting into it", head["version"],
                 slot)
        self._set("rebooting", progress=100)
        await self.restart()

    def _failed(self, version, msg):
        log.error("ota", "update to %s failed: %s", version, msg)
        self._set("failed", msg, progress=None)

    def _ca(self):
        if not self.o["ca_file"]:
            return None
        from ..net.link import ca_der
        try:
            with open(self.o["ca_file"], "rb") as f:
                return ca_der(f.read())
        except OSError as e:
            raise ValueError("ota.ca_file = %r cannot be read (%s)" % (self.o["ca_file"], e))

    async def restart(self):
        """The status out (at most 5 s), the energy kept, a clean goodbye, the reset."""
        for _ in range(50):
            if not self.net.link.pending(self.topic):
                break
            await asyncio.sleep_ms(100)
        self.save()
        await self.net.link.goodbye()
        self.node.board.reset()

    def rollback(self):
        """The ota_rollback command."""
        st = rbboot.state() or {}
        fw = self.trial and self.trial.get("firmware")
        if not st.get("active") and not fw:
            raise OtaError("the image's own app is running: there is no earlier version on "
                           "the node (a firmware update, once it reported healthy, is "
                           "replaced by a newer one, not rolled back)")
        if self.state in UNDER_WAY:
            raise OtaError("an update is running")
        if not self.save():
            raise OtaError("the energy ledger could not be saved: not switching")
        rbboot.rollback("by command (ota_rollback)")
        back = "the firmware before (the bootloader)" if fw else \
            "slot %s (%s)" % (st.get("prev"), st.get("prev_version")) if st.get("prev") \
            else "the image's app"
        log.warning("ota", "rolling back from %s to %s (command)", VERSION, back)
        self._set("rebooting")
        self.tasks.spawn(self.restart())
        return {"to": back}

    # ---- the trial ---------------------------------------------------------------------------
    def missing(self):
        """What the running version still lacks to be healthy ([] = healthy)."""
        node = self.node
        out = []
        if not node.meters or any(m.state != "ok" for m in node.meters):
            out.append("every module measuring (%s)" % (", ".join(
                "%s %s" % (m.id, m.state) for m in node.meters) or "none found"))
        if not self.net.link.online:
            out.append("a broker connection")
        if node.metering.outcomes["ok"] < 1:
            out.append("a closed period")
        return out

    async def _trial(self):
        limit = self.o["confirm_s"]
        log.info("ota", "version %s on trial: it must be healthy within %d s", VERSION, limit)
        self.publish()
        while self.node.uptime_s() < limit:
            if self.state != "trial":          # ota_rollback: the restart is under way
                return
            if not self.missing():
                return self._confirm()
            await asyncio.sleep(1)
        self._give_up(self.missing())
        await self.restart()

    def at_wake(self, now_ms):
        """Sleep mode, after a wake's network step: the trial decided at this wake. True
        when it was rolled back (the app then calls restart())."""
        if self.state != "trial":
            return False
        missing = self.missing()
        if not missing:
            self._confirm()
            return False
        since = rbboot.trial_since(now_ms)
        waited = 0 if since is None else (now_ms - since) // 1000
        if waited < self.o["confirm_s"]:
            log.warning("ota", "version %s on trial, not healthy at this wake (missing: %s): "
                        "%d s of %d s gone", VERSION, ", ".join(missing), waited,
                        self.o["confirm_s"])
            return False
        self._give_up(missing)
        return True

    def _confirm(self):
        rbboot.confirm()
        self.last = (rbboot.state() or {}).get("last")
        log.info("ota", "version %s reported healthy: it stays", VERSION)
        self._set("ok", target=None)

    def _give_up(self, missing):
        reason = "not healthy within %d s (missing: %s)" % (self.o["confirm_s"],
                                                            ", ".join(missing))
        log.error("ota", "version %s %s: rolling back", VERSION, reason)
        rbboot.rollback(reason)
        self._set("rolled_back", reason)
