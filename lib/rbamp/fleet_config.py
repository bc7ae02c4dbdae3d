"""General-Call opt-in of one module (§8.2), mixed into RbAmp."""
from . import _regs as R
from .errors import RbAmpParamError


class FleetConfig:
    """General-Call opt-in of one module (mixed into RbAmp)."""

    def read_gc_tick(self):
        return self.io.read_stable_u16(R.GC_TICK)

    def gc_enabled(self):
        return bool(self.capability & R.CAP_GC_LATCH) and bool(self.io.read_u8(R.FLEET_CONFIG) & 1)

    def set_group_id(self, group, save=True):
        if not 0 <= group <= 0xFF:
            raise RbAmpParamError(22, "group id %r not in 0..255" % (group,))
        if self.io.read_u8(R.GROUP_ID) == group:
            return False
        self.io.write_u8(R.GROUP_ID, group)
        self._outcome("group id")
        if save:
            self.save_user_config()
        return True

    def enable_gc(self, enable=True, group=None):
        """FLEET_CONFIG.GC_ENABLE takes effect after a reset: write, save, reset, verify."""
        if not self.capability & R.CAP_GC_LATCH:
            raise RbAmpParamError(22, "module cannot take General-Call latches")
        changed = False
        if group is not None:
            changed = self.set_group_id(group, save=False)
        want = 1 if enable else 0
        if self.io.read_u8(R.FLEET_CONFIG) & 1 != want:
            self.io.write_u8(R.FLEET_CONFIG, want)
            self._outcome("FLEET_CONFIG")
            changed = True
        if changed:
            self.save_user_config()
            self.reset()
        return changed
