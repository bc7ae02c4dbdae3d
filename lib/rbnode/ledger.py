"""Energy totals per meter (module UID) and channel, import and export, in integer µWh,
kept on flash so that a power loss at any instant never leaves a half-written state.

Two slots, `<path>.0` and `<path>.1`, written alternately; each holds one JSON document
and a CRC-32 line, with a sequence number. Loading takes the valid slot with the highest
sequence: a write torn by a power loss only ever spoils the slot being written, and the
other still holds the previous state. One save writes ≈ 0.2-2 KB; at the default
save_s = 300 that is 288 writes a day (LittleFS spreads them over the free blocks).

Integrity rules (the ledger is the only source of truth for the totals):
  - loading never fails: a slot is read as bytes and anything wrong with it (invalid UTF-8,
    erased flash, a torn write, a valid CRC over missing or mistyped fields, negative or
    absurd values, another version) rejects that slot with a one-line reason; the other
    slot is used. When no slot is usable, the files are set aside under new names (never
    overwritten: `<slot>.bad-<n>`) so the totals can be recovered, and the ledger starts at 0;
  - nothing is written before load() ran: a crash or stop path can never replace a good
    slot with a ledger that was not restored (LedgerError);
  - a save writes the slot that does not hold the newest good state, so that state is on
    flash until the new one is complete; saved totals never decrease.

Besides the lifetime totals ("ch"), a meter may keep, per channel, import and export:
  - "tar": {tariff name: [[imp, exp] per channel]}, when tariffs are configured: every addition
    goes to the tariff in force (`Ledger.tariff`); the lifetime total is their sum, exactly
    (checked at load: a slot where it is not is rejected). Energy from before tariffs were
    configured, and totals seeded by a command, go to the default tariff;
  - "day", "yday", "mon": [day or month number, [[imp, exp] per channel]]: today, yesterday
    and this month (local dates, calendar.py); a seeded total is in none of them;
  - "peak": [[day, mW], [month, mW]]: the highest demand of the day and of the month.

A save includes the provisional energy of the open period (the node's RT shadow of import,
see meter.py, and the export integrated since the last latch): after an unplanned restart
the node starts a new period with a primer latch, so that energy would otherwise be lost;
it is never counted twice because the module's own accumulation of that time is discarded
by the primer.
"""
import io
import json
import os

try:
    from binascii import crc32
except ImportError:  # a port built without it
    def crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
        return crc ^ 0xFFFFFFFF

from . import log
from .buckets import copy, dated, plus, sums, widen, zeros

VERSION = 1
MAX_SLOT = 16384          # bytes: a bigger file is not a slot (and would not fit the heap)
MAX_METERS = 32
MAX_UWH = 10**17          # 100 GWh: more than a channel can measure in a lifetime
MAX_SEQ = 2**40           # a save every 2 s for 70000 years
KEEP_BAD = 8              # set-aside files per slot (the oldest stay, later ones are not kept)


class LedgerError(ValueError):
    pass


def encode(doc):
    body = json.dumps(doc)
    return "%s\n%08x\n" % (body, crc32(body.encode()) & 0xFFFFFFFF)


class _Crc(io.IOBase):
    """A stream that writes to f and keeps the CRC-32 of what went through."""

    def __init__(self, f):
        self.f = f
        self.crc = 0

    def write(self, b):
        self.crc = crc32(b, self.crc)
        return self.f.write(b)


def write_slot(f, doc):
    """encode(doc), written to f as json.dump makes it: the slot (three copies of it in
    encode) never sits in the heap, where a node at the edge of its heap may not have one
    block of its size."""
    w = _Crc(f)
    json.dump(doc, w)
    f.write("\n%08x\n" % (w.crc & 0xFFFFFFFF))


def decode(data):
    """Parse one slot (bytes or text) into its document; raises LedgerError naming the
    problem. Only the framing and the CRC are checked here (see check())."""
    if isinstance(data, str):
        data = data.encode()
    data = bytes(data).rstrip(b"\n")
    cut = data.rfind(b"\n")
    if cut < 0:
        raise LedgerError("no CRC line (torn write or erased flash)")
    body, tail = data[:cut], data[cut + 1:]
    try:
        want = int(tail.decode(), 16)
    except (ValueError, UnicodeError):
        raise LedgerError("bad CRC line")
    if crc32(body) & 0xFFFFFFFF != want:
        raise LedgerError("CRC mismatch (torn or corrupted write)")
    try:
        doc = json.loads(body.decode())
    except UnicodeError:
        raise LedgerError("not UTF-8 text")
    except Exception as e:  # noqa: BLE001 - ValueError, nesting too deep, MemoryError
        raise LedgerError("not JSON (%s)" % type(e).__name__)
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise LedgerError("not a version-%d ledger" % VERSION)
    return doc


def _int(v, lo, hi):
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def check_meters(meters, named=True):
    """Raises LedgerError if `meters` is not {key: {"name", "addr", "ch": [[imp, exp]]}} with
    sane values. named=False: name and addr are optional (the sleep state)."""
    if not isinstance(meters, dict) or len(meters) > MAX_METERS:
        raise LedgerError("bad meter table")
    for key, m in meters.items():
        k = key[:24]
        if not isinstance(m, dict) or len(key) > 40:
            raise LedgerError("bad meter %r" % k)
        chans = m.get("ch")
        if not isinstance(chans, list) or not 1 <= len(chans) <= 3:
            raise LedgerError("meter %s: bad channel list" % k)
        for c in chans:
            if not (isinstance(c, list) and len(c) == 2 and _int(c[0], 0, MAX_UWH)
                    and _int(c[1], 0, MAX_UWH)):
                raise LedgerError("meter %s: a total is not a whole number of µWh in "
                                  "0..%d" % (k, MAX_UWH))
        if named and not (isinstance(m.get("name"), str) and _int(m.get("addr"), 0, 127)):
            raise LedgerError("meter %s: bad name or address" % k)
        _check_buckets(k, m)


def _pairs(v, n):
    return isinstance(v, list) and len(v) == n and all(
        isinstance(c, list) and len(c) == 2 and _int(c[0], 0, MAX_UWH) and _int(c[1], 0, MAX_UWH)
        for c in v)


def _check_buckets(k, m):
    """The optional buckets of meter k (see the module's docstring)."""
    chans = m["ch"]
    n = len(chans)
    tar = m.get("tar")
    if tar is not None:
        if not isinstance(tar, dict) or not 1 <= len(tar) <= 2 * 4 + 8 or not all(
                isinstance(t, str) and len(t) <= 24 and _pairs(v, n) for t, v in tar.items()):
            raise LedgerError("meter %s: bad tariff totals" % k)
        for ch in range(n):
            for j in (0, 1):
                if sum(v[ch][j] for v in tar.values()) != chans[ch][j]:
                    raise LedgerError("meter %s: the tariff totals do not add up to the lifetime "
                                      "total" % k)
    for b in ("day", "yday", "mon"):
        v = m.get(b)
        if v is None:
            continue
        if not (isinstance(v, list) and len(v) == 2 and (v[0] is None or _int(v[0], 0, 10**6))
                and _pairs(v[1], n)) or any(v[1][ch][j] > chans[ch][j] for ch in range(n)
                                            for j in (0, 1)):
            raise LedgerError("meter %s: bad %s totals" % (k, b))
    v = m.get("peak")
    if v is not None and not (isinstance(v, list) and len(v) == 2 and all(
            isinstance(x, list) and len(x) == 2 and (x[0] is None or _int(x[0], 0, 10**6))
            and _int(x[1], 0, 10**9) for x in v)):
        raise LedgerError("meter %s: bad peak demand" % k)


def check(doc):
    """A decoded slot's document, fields and values checked; raises LedgerError."""
    if not _int(doc.get("seq"), 1, MAX_SEQ):
        raise LedgerError("bad sequence number")
    check_meters(doc.get("meters"))
    return doc


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


class Ledger:
    def __init__(self, path="energy"):
        self.path = path
        self.seq = 0
        self.meters = {}     # key -> {"name", "addr", "ch": [[import_uwh, export_uwh], ...]}
        self.saved = {}      # key -> [[import_uwh, export_uwh], ...] as last written
        self.saves = 0
        self.rejected = 0    # additions refused (negative or absurd): a bug if ever > 0
        self.restored_from = None
        self.loaded = False  # load() ran: saving may begin
        self.slot = 0        # the slot holding the newest good state (the next save: the other)
        self.problems = []   # one line per slot rejected at load
        self.set_aside = []  # files renamed because no slot was usable
        self.tariffs = None  # the configured tariff names (use_tariffs), None: no tariffs
        self.default = None  # the default tariff: history and seeded totals go there
        self.tariff = None   # the tariff in force: additions go there (calendar.py)
        self.days = False    # day and month totals are kept (use_days)

    # ---- totals ----------------------------------------------------------------------------
    def meter(self, key, name, addr, channels):
        m = self.meters.get(key)
        if m is None:
            m = self.meters[key] = {"name": name, "addr": addr, "ch": []}
        m["name"], m["addr"] = name, addr
        widen(m, channels)
        if self.tariffs:
            self._tariffs(key, m)
        if self.days:
            self._undated(m)
        return m

    def use_tariffs(self, names, default):
        """Keep a total per tariff from now on (names: the configured ones). A meter's
        energy from before goes to the default tariff; a tariff no longer configured keeps
        its totals (not published, still part of the sum). Without tariffs configured, a
        ledger that has tariff totals keeps them: additions go to NO_TARIFF (use_tariffs([],
        NO_TARIFF), calendar.py)."""
        self.tariffs, self.default, self.tariff = list(names), default, default
        for key, m in self.meters.items():
            self._tariffs(key, m)

    def _tariffs(self, key, m):
        tar = m.get("tar")
        n = len(m["ch"])
        if tar is None:
            tar = m["tar"] = {self.default: copy(m["ch"])}
            if any(c[0] or c[1] for c in m["ch"]):
                log.info("ledger", "%s: the energy measured before tariffs were configured is "
                         "booked to the default tariff %r", m["name"], self.default)
        for t in self.tariffs + [self.default]:
            if t not in tar:
                tar[t] = zeros(n)
        for t in tar:
            if t not in self.tariffs and t != self.default:
                log.warning("ledger", "%s: tariff %r is no longer configured: its totals are "
                            "kept in the ledger (not published)", m["name"], t)

    def add(self, key, ch, import_uwh, export_uwh, seed=False):
        """Energy measured (to the tariff in force, today and this month), or with seed a
        total set by a command (to the default tariff only)."""
        if not (0 <= import_uwh <= MAX_UWH and 0 <= export_uwh <= MAX_UWH):
            self.rejected += 1
            log.error("ledger", "refused an addition %s ch%d %d/%d µWh", key, ch,
                      import_uwh, export_uwh)
            return
        m = self.meters[key]
        lists = [m["ch"]]
        tar = m.get("tar")
        if tar is not None:
            lists.append(tar[self.default if seed else self.tariff])
        if not seed:
            for b in ("day", "mon"):
                if m.get(b) is not None:
                    lists.append(m[b][1])
        for v in lists:
            c = v[ch]
            c[0] += import_uwh
            c[1] += export_uwh

    def tariff_name(self):
        """The configured tariff in force, or None (no tariffs configured)."""
        return self.tariff if self.tariffs else None

    def roll(self, day, month):
        """Local date now (days since 1970, months since year 0): the day and month totals
        roll over when it is later than theirs (never back: a clock set back keeps them).
        A bucket without a date (the time was never valid) takes this one: its energy was
        measured today."""
        for m in self.meters.values():
            n = len(m["ch"])
            d = m.get("day")
            if d is None or d[0] is None:
                m["day"] = [day, d[1] if d else zeros(n)]
            elif day > d[0]:
                m["yday"] = [day - 1, d[1] if day == d[0] + 1 else zeros(n)]
                m["day"] = [day, zeros(n)]
            mo = m.get("mon")
            if mo is None or mo[0] is None:
                m["mon"] = [month, mo[1] if mo else zeros(n)]
            elif month > mo[0]:
                m["mon"] = [month, zeros(n)]
            pk = m.get("peak")
            if pk is not None:
                if pk[0][0] is None or day > pk[0][0]:
                    pk[0] = [day, 0]
                if pk[1][0] is None or month > pk[1][0]:
                    pk[1] = [month, 0]

    def use_days(self):
        """Day and month totals from now on (dated by roll() once the time is valid)."""
        self.days = True
        for m in self.meters.values():
            self._undated(m)

    @staticmethod
    def _undated(m):
        for b in ("day", "mon"):
            if m.get(b) is None:
                m[b] = [None, zeros(len(m["ch"]))]

    def demand(self, key, mw):
        """A full period's demand: the day's and the month's highest."""
        m = self.meters[key]
        pk = m.get("peak")
        if pk is None:
            d, mo = m.get("day"), m.get("mon")
            pk = m["peak"] = [[d[0] if d else None, 0], [mo[0] if mo else None, 0]]
        for x in pk:
            if mw > x[1]:
                x[1] = min(mw, 10**9)

    def view(self, key, prov=None):
        """What is published for meter key: {"ch", "tar" (configured tariffs only), "day",
        "yday", "mon", "peak"} with the provisional energy of the open period added where it
        will be booked."""
        m = self.meters[key]
        out = {"ch": plus(m["ch"], prov)}
        tar = m.get("tar")
        if tar is not None and self.tariffs:
            out["tar"] = {t: plus(tar[t], prov if t == self.tariff else None)
                          for t in self.tariffs}
        for b in ("day", "mon"):
            if m.get(b) is not None:
                out[b] = plus(m[b][1], prov)
        if m.get("yday") is not None and m.get("day") is not None and \
                m["day"][0] is not None and m["yday"][0] == m["day"][0] - 1:
            out["yday"] = m["yday"][1]
        elif m.get("day") is not None:
            out["yday"] = zeros(len(m["ch"]))
        out["peak"] = m.get("peak")
        return out

    def total(self, key, ch):
        """(import_uwh, export_uwh)."""
        c = self.meters[key]["ch"][ch]
        return c[0], c[1]

    # ---- persistence ------------------------------------------------------------------------
    def _slot(self, i):
        return "%s.%d" % (self.path, i)

    def _read(self, i):
        """(document, None), (None, reason), or (None, None) when the slot does not exist."""
        p = self._slot(i)
        try:
            size = os.stat(p)[6]
        except OSError:
            return None, None
        if size > MAX_SLOT:
            return None, "%d bytes, not a ledger slot" % size
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError as e:
            return None, "unreadable (%s)" % e
        except MemoryError:
            return None, "unreadable (out of memory)"
        try:
            return check(decode(data)), None
        except LedgerError as e:
            return None, str(e)

    def load(self):
        """Restore the newest valid slot. Returns the sequence number (0: nothing restored).
        Never raises: every problem is logged with its slot, and the node goes on."""
        best = None
        self.problems = []
        for i in (0, 1):
            doc, why = self._read(i)
            if why:
                self.problems.append("%s: %s" % (self._slot(i), why))
            elif doc is not None and (best is None or doc["seq"] > best[1]["seq"]):
                best = (i, doc)
        if best is None and self.problems:
            self._set_aside()
        for p in self.problems:
            log.warning("ledger", "rejected %s%s", p, " (the other slot is used)" if best else "")
        self.loaded = True
        if best is None:
            return 0
        self.slot, doc = best
        self.seq = doc["seq"]
        self.meters = doc["meters"]
        self.saved = copy(self.meters)
        self.restored_from = self._slot(self.slot)
        return self.seq

    def _set_aside(self):
        """No usable slot: keep every existing slot file under a new name for recovery."""
        for i in (0, 1):
            p = self._slot(i)
            if not _exists(p):
                continue
            for n in range(1, KEEP_BAD + 1):
                dest = "%s.bad-%d" % (p, n)
                if not _exists(dest):
                    break
            else:
                dest = None
            try:
                if dest is None:
                    raise OSError("%d set-aside copies exist already" % KEEP_BAD)
                os.rename(p, dest)
                self.set_aside.append(dest)
            except OSError as e:
                # it stays where it is; the saves go round it (never over it)
                self.set_aside.append(p)
                log.error("ledger", "could not set %s aside (%s): it is kept in place", p, e)
        log.error("ledger", "NO USABLE ENERGY LEDGER: totals start at 0. The old files are "
                  "kept (%s); see README 'Faults and recovery' to restore the totals",
                  ", ".join(self.set_aside))

    def save(self, provisional=None, epoch=0):
        """Write the next slot. provisional: {key: [[import µWh, export µWh] per channel]}
        of open periods (Metering.provisional), saved with the totals, never added to them.
        Raises OSError when the filesystem refuses (the node reports and retries) and
        LedgerError when the ledger was never loaded."""
        if not self.loaded:
            raise LedgerError("the ledger was not loaded: not saving over the flash copy")
        out = {}
        for key, m in self.meters.items():
            out[key] = self._out(m, provisional.get(key) if provisional else None,
                                 self.saved.get(key) or {})
        seq = self.seq + 1
        target = 1 - self.slot
        p = self._slot(target)
        if p in self.set_aside:       # a bad file that could not be renamed: never over it
            raise OSError("%s holds an unusable ledger that could not be set aside" % p)
        with open(p, "w") as f:
            write_slot(f, {"v": VERSION, "seq": seq, "t": epoch, "meters": out})
        self.seq = seq
        self.slot = target
        self.saved = out
        self.saves += 1
        return seq

    def _out(self, m, prov, last):
        """A meter as saved: its totals + the open period's provisional energy, each never
        below what the last save wrote (a restart may have restored that already); the
        lifetime the sum of the tariff totals."""
        o = {"name": m["name"], "addr": m["addr"]}
        tar = m.get("tar")
        if tar is None:
            o["ch"] = plus(m["ch"], prov, last.get("ch"))
        else:
            lt = last.get("tar") or {}
            o["tar"] = {t: plus(v, prov if t == self.tariff else None, lt.get(t))
                        for t, v in tar.items()}
            o["ch"] = sums(o["tar"], len(m["ch"]))
        for b in ("day", "mon"):
            if m.get(b) is not None:
                o[b] = dated(m[b], prov, last.get(b))
        for b in ("yday", "peak"):
            if m.get(b) is not None:
                o[b] = copy(m[b])
        return o

    def files(self):
        return [p for p in (self._slot(0), self._slot(1)) if _exists(p)]
