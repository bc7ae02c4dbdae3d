"""Opcodes written to COMMAND (0x01) and the configuration registers with rules
(rbamp-protocol.md §5, §8.2, §9). Functions take the module as first argument."""
from . import regmap as R
from . import measure

_LEGACY_IGNORED = (R.OP_CLEAR_ERROR, R.OP_SAVE_USER_CONFIG, R.OP_COMMIT_ADDR)


def execute(m, op, t):
    if op == R.OP_NOP:
        return
    if op == R.OP_LATCH:
        measure.latch(m, t)
    elif op == R.OP_RESET:
        reset(m, t)
    elif R.OP_SET_CT_CH0 <= op <= R.OP_SET_CT_CH2 and m.version >= 3:
        bind_ct(m, op - R.OP_SET_CT_CH0, t)
    elif op == R.OP_COMMIT_ADDR and m.version >= 4:
        commit_address(m, t)
    elif op == R.OP_CLEAR_ERROR and m.version >= 4:
        if m.condition != R.ERR_CLONE:
            m.condition = 0
        m.outcome = 0
        m.err_since = None
    elif op == R.OP_SAVE_USER_CONFIG and m.version >= 4:
        save_user_config(m, t)
    elif op == R.OP_CAPTURE_RAW:
        m.capture_ready_at = t + 80000
    elif op == R.OP_SAVE_GAINS and m.mode == 1:
        _flash_write(m, t)  # develop mode: persists everything, incl. a staged address
        if m.staged is not None:
            m.flash.address = m.staged
        _copy_user_config(m)
    elif op == R.OP_FACTORY_RESET and m.mode == 1:
        m.flash.erase()
        m.flash.writes += 1
        m.power_on(t, R.RC_SOFTWARE, R.FACTORY_BUSY_US)
    elif m.version >= 4:
        m.reject(t)  # unknown or blocked opcode: ERR_PARAM on v1.3 (§5.2)
    # before v1.3 unknown opcodes were silently ignored


def reset(m, t):
    """CMD_RESET: the MCU restarts at once; the bus NACKs for the reset window (§2.7)."""
    m.power_off(t)
    m.power_on(t, R.RC_SOFTWARE, m.reset_busy_us)
    m.reset_nack_pending = not m.reset_acks


def _flash_write(m, t, busy=R.FLASH_BUSY_US):
    m.flash.writes += 1
    m.flash.valid = True
    m.busy_until = t + busy
    m.flash_busy_until = t + busy


def _copy_user_config(m):
    f = m.flash
    f.sensor_class = m.r_class
    f.ct = list(m.r_ct)
    f.staging = m.r_staging
    f.fleet = m.r_fleet
    f.group = m.r_group
    f.label = bytes(m.r_label)


def save_user_config(m, t):
    """SAVE_USER_CONFIG: class, CT bindings, staging, fleet, group, label; not the address
    (§18 #14). A successful save clears a boot-time 0xFB."""
    _copy_user_config(m)
    _flash_write(m, t)
    if m.condition == R.ERR_FLASH_PARAMS_BAD:
        m.condition = 0


def stage_ct(m, code, t):
    """CT_MODEL staging (§9.1): v1.3 stores only; v1.2 also applied to ch0; v1.0/1.1 a tag."""
    m.r_staging = code
    if m.version == 3:
        if m.r_class != 0 and code in m.ct_codes:
            m.r_ct[0] = code
            m.events |= R.EV_CONFIG_CHANGED
    elif m.version < 3:
        m.r_ct[0] = code


def set_class(m, v, t):
    if v > 3:
        return m.reject(t)
    if v != m.r_class:
        m.r_class = v
        m.r_staging = 0
        m.r_ct = [0, 0, 0]  # bindings must be redone after a class change (§9.1)
        m.events |= R.EV_CONFIG_CHANGED


def bind_ct(m, ch, t):
    """SET_CT_MODEL_CHn: class-first guard, code accepted for the class, channel present."""
    code = m.r_staging
    if m.r_class == 0 or ch >= m.n_i:
        return m.reject(t)
    if m.r_class != 1 or code not in m.ct_codes:
        return m.reject(t)  # only SCT_013 has characterised presets on shipping SKUs
    m.r_ct[ch] = code
    m.events |= R.EV_CONFIG_CHANGED


def write_threshold(m, a, v):
    """Thresholds are u16 written one byte at a time, low byte first (§12)."""
    if a < R.THRESH_P_HI:
        cur, lo = m.thr_i, a == R.THRESH_I_HI
    else:
        cur, lo = m.thr_p, a == R.THRESH_P_HI
    cur = (cur & 0xFF00) | v if lo else (cur & 0x00FF) | (v << 8)
    if a < R.THRESH_P_HI:
        m.thr_i = cur
    else:
        m.thr_p = cur


def stage_address(m, v, t):
    if not 0x08 <= v <= 0x77:
        return m.reject(t)  # nothing staged
    m.staged = v
    m.events |= R.EV_CONFIG_CHANGED


def arm(m, v, t):
    if v != R.COMMIT_MAGIC:
        m.armed_at = None
        return m.reject(t)
    m.armed_at = t


def commit_address(m, t):
    """COMMIT_ADDR (§9.3): needs the magic < 5 s old and a staged candidate; consumes the
    magic either way; writes flash (700 ms busy) and does not reset."""
    armed = m.armed_at is not None and t - m.armed_at < R.ARM_TIMEOUT_US
    m.armed_at = None
    if not armed or m.staged is None:
        return m.reject(t)
    m.flash.address = m.staged
    _flash_write(m, t)


def gc_frame(m, data, t):
    """A General-Call frame seen by an enabled module (§8.2). Returns True if accepted."""
    if len(data) < 5 or data[0] != R.GC_MAGIC or data[1] != R.OP_LATCH:
        return False
    group = data[2]
    if group != 0 and group != m.r_group:
        return False
    measure.latch(m, t)
    m.gc_tick = data[3] | (data[4] << 8)
    if m.has_voltage:
        half = int(500000 / m.mains.hz)
        m.zc_offset = (t + 7919 * m.boots) % half
    return True
