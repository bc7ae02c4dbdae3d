"""Configuration and commissioning (rbamp-protocol.md §9): sensor class, CT models, label,
address, saves, resets. Everything is read-compare-write: flash is written only when a
value differs, and only with SAVE_USER_CONFIG / COMMIT_ADDR (never the blocked SAVE_GAINS,
§18 #18: the public Python package uses it and production modules refuse it)."""

from ._time import sleep_ms, ticks_diff, ticks_ms
from . import _regs as R
from .errors import RbAmpModeError, RbAmpParamError, RbAmpSensorClass

CT_CODES_V13 = (1, 2, 3, 4, 6)  # 5 is refused by v1.3 firmware, 7 is uncharacterised (§9.1)
CT_CODES_LEGACY = (1, 2, 3, 4, 5)
CT_RATINGS = {1: 5, 2: 10, 3: 30, 4: 50, 5: 100, 6: 20, 7: 60}
# rated A -> the CT model code set_ct_model_ch takes, for the characterised models (code 7,
# 60 A, is not characterised, §9.1)
CT_CODES = dict((a, c) for c, a in CT_RATINGS.items() if c != 7)


class Commissioning:
    def _outcome(self, what, grace_ms=300):
        """REG_ERROR right after the operation (§5.3 rule 2). Busy windows are approximate
        (flash ≈ 700 ms): a module still NACKing is polled for up to grace_ms more."""
        t0 = ticks_ms()
        while True:
            try:
                e = self.io.read_u8(R.ERROR)
                break
            except OSError:
                if ticks_diff(ticks_ms(), t0) > grace_ms:
                    raise
                sleep_ms(10)
        if e == R.ERR_PARAM:
            raise RbAmpModeError(1, "rbAmp 0x%02x refused %s (ERR_PARAM)" % (self.addr, what))
        return e

    def _command(self, op, settle_ms, what, retry=True):
        self.io.write_u8(R.COMMAND, op, retry)
        sleep_ms(settle_ms)
        return self._outcome(what)

    def ct_codes(self):
        return CT_CODES_V13 if (self.firmware_version or 4) >= 4 else CT_CODES_LEGACY

    # ---- sensor class and CT models (§9.1) ----------------------------------------------
    def read_sensor_class(self):
        return self.io.read_u8(R.SENSOR_CLASS)

    def set_sensor_class(self, sensor_class=RbAmpSensorClass.SCT_013, save=True):
        """Returns True if the module changed (then saved to flash unless save=False).
        A different class resets the CT bindings: bind them again."""
        if sensor_class not in (0, 1, 2, 3):
            raise RbAmpParamError(22, "sensor class %r not in 0..3" % (sensor_class,))
        if (self.firmware_version or 4) < 3:
            raise RbAmpModeError(95, "firmware v1.%d has no sensor class" % (self.firmware_version - 1))
        if self.read_sensor_class() == sensor_class:
            return False
        self.io.write_u8(R.SENSOR_CLASS, sensor_class)
        self._outcome("sensor class %d" % sensor_class)
        if self.read_sensor_class() != sensor_class:
            raise RbAmpModeError(5, "sensor class did not read back")
        if save:
            self.save_user_config()
        return True

    def read_ct_model_ch(self, ch=0):
        """The CT code applied to ch (verify mirror, read until two reads agree, §2.6)."""
        self._check_ch(ch)
        return self.io.read_stable_u8(R.CT_MODEL_CH0 + ch)

    def set_ct_model_ch(self, ch, code, save=True):
        """Bind a CT model to one channel; returns True if the module changed."""
        self._check_ch(ch)
        if code not in self.ct_codes():
            raise RbAmpParamError(22, "CT code %r not accepted by firmware v1.%d (use one of %s)"
                                  % (code, (self.firmware_version or 4) - 1, self.ct_codes()))
        fw = self.firmware_version or 4
        if fw >= 3 and self.read_sensor_class() == RbAmpSensorClass.UNSET:
            raise RbAmpModeError(1, "REG_SENSOR_CLASS is UNSET on v1.%d firmware (class-first "
                                    "guard); call set_sensor_class(RbAmpSensorClass.SCT_013) "
                                    "first" % (fw - 1))
        if fw >= 4 and self.read_ct_model_ch(ch) == code:
            return False
        self.io.write_u8(R.CT_MODEL, code)          # staging only on v1.3
        if (self.firmware_version or 4) >= 3:
            self._command(R.OP_SET_CT_CH0 + ch, R.T_BIND, "CT code %d on ch%d" % (code, ch))
        if (self.firmware_version or 4) >= 4 and self.read_ct_model_ch(ch) != code:
            raise RbAmpModeError(5, "CT code %d on ch%d did not verify" % (code, ch))
        if save:
            self.save_user_config()
        return True

    def set_ct_model(self, code, save=True):
        """The same CT model on every channel. The sensor class is never changed: on v1.2+
        a module whose class is UNSET raises RbAmpModeError (set_sensor_class() first)."""
        return self.configure_channels([code] * self.channels, save=save)

    def configure_channels(self, codes, sensor_class=None, save=True):
        """Each channel's CT code, then ONE flash save if anything changed. sensor_class:
        set first when given (class first, §9.1); None keeps the module's, and an UNSET
        class on v1.2+ raises RbAmpModeError (set_ct_model_ch's class-first guard) before
        anything is written. Channels go in descending order: on v1.2 a staging write also
        bound ch0 (§9.1)."""
        if len(codes) > self.channels:
            raise RbAmpParamError(22, "%d CT codes for a %d-channel module" % (len(codes), self.channels))
        changed = False
        if sensor_class is not None and (self.firmware_version or 4) >= 3:
            changed = self.set_sensor_class(sensor_class, save=False)
        for ch in range(len(codes) - 1, -1, -1):
            changed = self.set_ct_model_ch(ch, codes[ch], save=False) or changed
        if changed and save:
            self.save_user_config()
        return changed

    # ---- persistence, reset --------------------------------------------------------------
    def save_user_config(self):
        """SAVE_USER_CONFIG: class, CT bindings, fleet config, group, label -> flash (700 ms)."""
        if self.capability and not self.capability & R.CAP_SAVE_USER_CONFIG:
            raise RbAmpModeError(95, "module cannot SAVE_USER_CONFIG (CAPABILITY bit 9)")
        e = self._command(R.OP_SAVE_USER_CONFIG, R.T_FLASH, "SAVE_USER_CONFIG")
        if e not in (R.ERR_OK, R.ERR_NOT_READY):
            raise RbAmpModeError(5, "SAVE_USER_CONFIG left REG_ERROR 0x%02x" % e)

    def reset(self, timeout_ms=1000):
        """CMD_RESET (its ACK is advisory: the reset fires inside the transfer), wait until
        the module measures again, and prime a new period anchor."""
        try:
            self.io.write_u8(R.COMMAND, R.OP_RESET, retry=False)
        except OSError:
            pass
        sleep_ms(R.T_RESET)
        self.wait_ready(timeout_ms)
        self.prime()

    def factory_reset(self):
        """FACTORY_RESET exists only in develop mode (MODE = 1); production refuses it.
        The module comes back on the factory address 0x50 with REG_ERROR 0xFB (§3.15):
        it must be alone on 0x50 then."""
        if self.io.read_u8(R.MODE) != 1:
            raise RbAmpModeError(1, "factory reset needs a module in develop mode")
        try:
            self.io.write_u8(R.COMMAND, R.OP_FACTORY_RESET, retry=False)
        except OSError:
            pass
        sleep_ms(R.T_FACTORY)
        self.addr = self.io.addr = 0x50
        self.wait_ready()
        self._anchor = None

    # ---- label (§9.5) --------------------------------------------------------------------
    def set_label(self, text, save=True):
        """Up to 8 ASCII characters, written byte by byte (a burst stores only the first)."""
        raw = text.encode() if isinstance(text, str) else bytes(text)
        if len(raw) > 8 or any(b < 0x20 or b > 0x7E for b in raw):
            raise RbAmpParamError(22, "label %r: up to 8 printable ASCII characters" % (text,))
        raw = raw + bytes(8 - len(raw))
        cur = bytearray(8)
        self.io.read_into(R.LABEL, cur)
        if bytes(cur) == raw:
            return False
        for i in range(8):
            if cur[i] != raw[i]:
                self.io.write_u8(R.LABEL + i, raw[i])
        if save:
            self.save_user_config()
        return True

    # ---- address change (§9.3) -----------------------------------------------------------
    def prepare_address_change(self, new_addr):
        """Stage the new address (reads of 0x30 then return it). Exactly one module must be
        at the current address."""
        if not 0x08 <= new_addr <= 0x77 or new_addr == self.addr:
            raise RbAmpParamError(22, "new address 0x%02x: must be 0x08..0x77 and differ from 0x%02x"
                                  % (new_addr, self.addr))
        if self.capability and not self.capability & R.CAP_TWO_PHASE_ADDR:
            raise RbAmpModeError(95, "module has no two-phase address commit (legacy firmware)")
        self.io.write_u8(R.I2C_ADDRESS, new_addr)
        self._outcome("address 0x%02x" % new_addr)
        if self.io.read_stable_u8(R.I2C_ADDRESS) != new_addr:
            raise RbAmpModeError(5, "staged address did not read back")
        self._new_addr = new_addr

    def commit_address_change(self, timeout_ms=1000):
        """Magic, COMMIT_ADDR (700 ms), RESET (COMMIT_ADDR does not reset, §18 #10), then
        find the module at the new address and verify it. Returns the new address."""
        new = getattr(self, "_new_addr", None)
        if new is None:
            raise RbAmpParamError(22, "call prepare_address_change() first")
        self.io.write_u8(R.ADDR_COMMIT_MAGIC, 0xA5)   # back to back: the magic lives 5 s
        self._command(R.OP_COMMIT_ADDR, R.T_FLASH, "COMMIT_ADDR", retry=False)
        try:
            self.io.write_u8(R.COMMAND, R.OP_RESET, retry=False)
        except OSError:
            pass
        sleep_ms(R.T_RESET)
        self.addr = self.io.addr = new
        self._new_addr = None
        self.wait_ready(timeout_ms)
        if self.io.read_stable_u8(R.I2C_ADDRESS) != new:
            raise RbAmpModeError(5, "module did not come back on 0x%02x" % new)
        self.prime()
        return new

    # ---- RAM-only settings: rewrite after every module reboot (§9.2) --------------------
    def set_event_mask(self, mask):
        self.io.write_u8(R.EVENT_MASK, mask & 0x3F)

    def read_event_mask(self):
        return self.io.read_u8(R.EVENT_MASK)

    def set_thresholds(self, current_a=None, power_w=None):
        """THRESH_I_HI (0.01 A) / THRESH_P_HI (W); None disables. Low byte first (§12)."""
        for reg, v, scale in ((R.THRESH_I_HI, current_a, 100), (R.THRESH_P_HI, power_w, 1)):
            raw = 0xFFFF if v is None else int(v * scale + 0.5)
            if not 0 <= raw <= 0xFFFF:
                raise RbAmpParamError(22, "threshold %r out of range" % (v,))
            self.io.write_u8(reg, raw & 0xFF)
            self.io.write_u8(reg + 1, raw >> 8)
