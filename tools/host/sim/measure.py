"""The 200 ms measurement engine, the period accumulator and latch, digest and thresholds
(rbamp-protocol.md §6, §7, §11, §12). Functions take the module as first argument."""
import math
import struct

from . import regmap as R

_SQRT2 = 1.4142135623730951


def boot(m, t):
    """Measurement state after any reset (§3.15): nothing committed, empty live period."""
    m.period_valid = 0
    m.rt_status_at = t + m.first_commit_us + 20000
    m.live_sum = [0.0, 0.0, 0.0]
    m.live_exp = [0.0, 0.0, 0.0]  # STANDARD/PRO export accumulator [SKU-DATASHEET]: no address
    m.live_max0 = -1e30
    m.live_n = 0
    m.live_start = t
    m.last_latch = t
    m.truth_at_latch = [m.truth_wh(ch)[0] for ch in range(m.n_i)]   # for the tests
    m.snap_exp = [0.0, 0.0, 0.0]
    m.last_window = None  # (u, [i], [p], [q]) published at the last commit, for 'stuck'
    m.last_commit = None
    m.err_since = t if m.condition else None
    m.reset_nack_pending = False


def _ct_gain(m, ch):
    """Reading/true ratio of a channel: unbound -> 0, wrong binding scales by the ratings."""
    code = m.r_ct[ch]
    fitted = m.fitted[ch] if ch < len(m.fitted) else 0
    if m.version < 3:  # v1.0/v1.1: CT_MODEL is only a tag, the fitted clamp's preset is used
        return (1.0 if fitted else 0.0), R.CT_RATING.get(fitted, 30.0)
    if not code or not fitted:
        return 0.0, 30.0
    return R.CT_RATING[fitted] / R.CT_RATING[code], R.CT_RATING[code]


def _measure(m, t0, t1):
    """Physical window [t0, t1) -> module readings (u, i[], p[], q[], overflow)."""
    dur = t1 - t0
    u_true = m.mains.voltage(t0 + dur // 2)
    u = u_true if m.has_voltage else 0.0
    i_l, p_l, q_l = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    over = False
    for ch in range(m.n_i):
        c = m.channels[ch]
        net, _, _ = c.integrate(t0, t1)
        p_true = net / dur
        q_true = c.reactive(p_true)
        s_true = math.sqrt(p_true * p_true + q_true * q_true)
        i_true = s_true / u_true if u_true > 0 else 0.0
        gain, rating = _ct_gain(m, ch)
        gain *= 1.0 + m.gain_error
        i_raw = i_true * gain
        if i_raw > rating * 1.5:  # ADC clipping beyond the front-end range
            over = True
            i_raw = rating * 1.5
        nf = rating * 0.0003
        i_l[ch] = math.sqrt(max(0.0, i_raw * i_raw - nf * nf))
        if m.has_voltage:
            p_l[ch] = p_true * gain
            q_l[ch] = q_true * gain
    return u, i_l, p_l, q_l, over


def window_start(m):
    """World time at which the open RT window began: the last commit, or the boot."""
    return m.last_commit if m.last_commit is not None else m.boot_t


def commit(m, t):
    """One RT commit at world time t (§6.1): publish, accumulate, thresholds, DRDY."""
    t0 = window_start(m)
    if m.stuck and m.last_window is not None:
        u, i_l, p_l, q_l, over = m.last_window
    else:
        u, i_l, p_l, q_l, over = _measure(m, t0, t)
        m.last_window = (u, i_l, p_l, q_l, over)
    g = m.regs
    f = struct.pack_into
    f("<ff", g, R.U_RMS, u, u * _SQRT2)
    for ch in range(3):
        i, p = i_l[ch], p_l[ch]
        if i > 0 and u > 0:
            pf = max(-1.0, min(1.0, p / (u * i)))
        else:
            pf = float("nan") if (m.pf_at_zero == "nan" and ch < m.n_i) else 0.0
        f("<f", g, R.I_RMS + 4 * ch, i)
        f("<f", g, R.I_PEAK + 4 * ch, i * _SQRT2)
        f("<f", g, R.P_REAL + 4 * ch, p)
        f("<f", g, R.PF + 4 * ch, pf)
        f("<f", g, R.Q_REAC + 4 * ch, q_l[ch])
    hz = m.mains.hz
    g[R.AC_FREQ] = int(hz + 0.5)
    f("<H", g, R.AC_PERIOD, int(500000 / hz))
    for k in range(4):
        f("<H", g, R.ADC_MEAN_U + 2 * k, 2047 + (k & 1))
    if over and not m.outcome:
        m._set_outcome(R.ERR_SENSOR_OVERFLOW, t)
    # period accumulator (§7.2): BASIC clamps each window to >= 0
    for ch in range(m.n_i):
        p = p_l[ch]
        m.live_sum[ch] += p if p > 0 else 0.0
        m.live_exp[ch] += -p if p < 0 else 0.0
    if p_l[0] > m.live_max0:
        m.live_max0 = p_l[0]
    m.live_n += 1
    m.seq = (m.seq + 1) & 0xFF
    m.ready = True
    _digest(m, u, i_l, p_l)
    # thresholds (§12), durable error bit re-derived from REG_ERROR (§10.2)
    if m.thr_i != 0xFFFF and max(i_l) * 100 > m.thr_i:
        m.events |= R.EV_THRESH_I
    if m.thr_p != 0xFFFF and sum(p_l) > m.thr_p:
        m.events |= R.EV_THRESH_P
    if m.reg_error(t) and m.err_since is not None and t - m.err_since >= 150000:
        m.events |= R.EV_ERROR
    m.pulses.append(t)  # DRDY pulse after the commit (§6.3); the bus applies alarm holding
    m.last_commit = t
    m.next_commit = t + m.window_us


def _digest(m, u, i_l, p_l):
    """Digest window (§11): header, then the enabled fields in fixed order."""
    d = bytearray(R.DIGEST_LEN)
    d[1] = m.seq
    cfg = m.digest_cfg
    o = 2
    n = m.n_i
    if cfg & 1:
        for ch in range(n):
            struct.pack_into("<H", d, o, min(0xFFFF, int(i_l[ch] * 100 + 0.5)))
            o += 2
    if cfg & 2:
        struct.pack_into("<H", d, o, min(0xFFFF, int(u * 10 + 0.5)))
        o += 2
    if cfg & 4:
        for ch in range(n):
            struct.pack_into("<h", d, o, max(-32768, min(32767, int(round(p_l[ch])))))
            o += 2
    if cfg & 8:
        for ch in range(n):
            i = i_l[ch]
            pf = abs(p_l[ch] / (u * i)) if (u > 0 and i > 0) else 0.0
            d[o] = min(100, int(pf * 100 + 0.5))
            o += 1
    d[0] = R.ST_READY | (R.ST_EVENTS if m.events else 0)
    m.regs[R.DIGEST:R.DIGEST + R.DIGEST_LEN] = d


def latch(m, t):
    """LATCH_PERIOD (§7.3): close the live period into the snapshot, or an empty latch
    that keeps the live period (failed-latch preservation)."""
    m.advance(t)
    race = m.latch_race_us and m.last_commit is not None and t - m.last_commit < m.latch_race_us
    if m.live_n == 0 or race or m.empty_latches:
        m.empty_latches = max(0, m.empty_latches - 1)
        m.period_valid = 0
        return
    n = m.live_n
    avg = [m.live_sum[ch] / n if m.has_voltage else 0.0 for ch in range(3)]
    g = m.regs
    struct.pack_into("<I", g, R.PERIOD_COMMIT_CNT, n)
    struct.pack_into("<ff", g, R.PERIOD_AVG_P_CH1, avg[1], avg[2])
    struct.pack_into("<I", g, R.PERIOD_MS, m.chip_ms(t, m.live_start))
    struct.pack_into("<f", g, R.PERIOD_AVG_P, avg[0])
    struct.pack_into("<f", g, R.PERIOD_MAX_P, max(0.0, m.live_max0) if m.has_voltage else 0.0)
    struct.pack_into("<I", g, R.PERIOD_LATCH_MS, m.chip_ms(t, m.last_latch))
    m.snap_exp = [m.live_exp[ch] / n for ch in range(3)]
    m.period_valid = 1
    m.events |= R.EV_PERIOD_READY
    m.live_sum = [0.0, 0.0, 0.0]
    m.live_exp = [0.0, 0.0, 0.0]
    m.live_max0 = -1e30
    m.live_n = 0
    m.live_start = t
    m.last_latch = t
    m.truth_at_latch = [m.truth_wh(ch)[0] for ch in range(m.n_i)]   # for the tests


def capture_page(m, out, t):
    """CAPTURE_WINDOW stream port (§13): 32 raw u16 I0 codes of the selected page."""
    if m.capture_ready_at is None or t < m.capture_ready_at:
        return
    amp = 0.0
    gain, rating = _ct_gain(m, 0)
    if m.last_window:
        amp = m.last_window[1][0] * _SQRT2 / rating * 1800.0
    hz = m.mains.hz
    for k in range(min(32, len(out) // 2)):
        n = m.capture_page * 32 + k
        code = int(2048 + amp * math.sin(2 * math.pi * hz * n / 5000.0))
        out[2 * k] = code & 0xFF
        out[2 * k + 1] = (code >> 8) & 0x0F
