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

    # ---- totals ----------------------------------------------------------------------------
    def meter(self, key, name, addr, channels):
        m = self.meters.get(key)
        if m is None:
            m = self.meters[key] = {"name": name, "addr": addr, "ch": []}
        m["name"], m["addr"] = name, addr
        while len(m["ch"]) < channels:
            m["ch"].append([0, 0])
        return m

    def add(self, key, ch, import_uwh, export_uwh):
        if not (0 <= import_uwh <= MAX_UWH and 0 <= export_uwh <= MAX_UWH):
            self.rejected += 1
            log.error("ledger", "refused an addition %s ch%d %d/%d µWh", key, ch,
                      import_uwh, export_uwh)
            return
        c = self.meters[key]["ch"][ch]
        c[0] += import_uwh
        c[1] += export_uwh

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
        self.saved = {k: [c[:] for c in m["ch"]] for k, m in self.meters.items()}
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
            prov = provisional.get(key) if provisional else None
            last = self.saved.get(key) or []
            chans = []
            for ch, (imp, exp) in enumerate(m["ch"]):
                if prov and ch < len(prov):
                    imp, exp = imp + prov[ch][0], exp + prov[ch][1]
                if ch < len(last):    # never below what a restart could already have restored
                    imp, exp = max(imp, last[ch][0]), max(exp, last[ch][1])
                chans.append([imp, exp])
            out[key] = {"name": m["name"], "addr": m["addr"], "ch": chans}
        seq = self.seq + 1
        target = 1 - self.slot
        p = self._slot(target)
        if p in self.set_aside:       # a bad file that could not be renamed: never over it
            raise OSError("%s holds an unusable ledger that could not be set aside" % p)
        with open(p, "w") as f:
            write_slot(f, {"v": VERSION, "seq": seq, "t": epoch, "meters": out})
        self.seq = seq
        self.slot = target
        self.saved = {k: [c[:] for c in m["ch"]] for k, m in out.items()}
        self.saves += 1
        return seq

    def files(self):
        return [p for p in (self._slot(0), self._slot(1)) if _exists(p)]
