"""Energy totals per meter (module UID) and channel, import and export, in integer µWh,
kept on flash so that a power loss at any instant never leaves a half-written state.

Two slots, `<path>.0` and `<path>.1`, written alternately; each holds one JSON document
and a CRC-32 line, with a sequence number. Loading takes the valid slot with the highest
sequence: a write torn by a power loss only ever spoils the slot being written, and the
other still holds the previous state. One save writes ≈ 0.2-2 KB; at the default
save_s = 300 that is 288 writes a day (LittleFS spreads them over the free blocks).

A save includes the provisional import of the open period (the node's RT shadow, see
meter.py): after an unplanned restart the node starts a new period with a primer latch,
so that energy would otherwise be lost; it is never counted twice because the module's
own accumulation of that time is discarded by the primer. Saved totals never decrease.
"""
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


class LedgerError(ValueError):
    pass


def encode(doc):
    body = json.dumps(doc)
    return "%s\n%08x\n" % (body, crc32(body.encode()) & 0xFFFFFFFF)


def decode(text):
    """Parse one slot; raises LedgerError naming what is wrong."""
    text = text.rstrip("\n")
    cut = text.rfind("\n")
    if cut < 0:
        raise LedgerError("no CRC line (torn write?)")
    body, tail = text[:cut], text[cut + 1:]
    try:
        want = int(tail, 16)
    except ValueError:
        raise LedgerError("bad CRC line %r" % tail[:12])
    if crc32(body.encode()) & 0xFFFFFFFF != want:
        raise LedgerError("CRC mismatch (torn or corrupted write)")
    doc = json.loads(body)
    if not isinstance(doc, dict) or doc.get("v") != VERSION or not isinstance(doc.get("meters"), dict):
        raise LedgerError("not a version-%d ledger" % VERSION)
    return doc


class Ledger:
    def __init__(self, path="energy"):
        self.path = path
        self.seq = 0
        self.meters = {}     # key -> {"name", "addr", "ch": [[import_uwh, export_uwh], ...]}
        self.saved = {}      # key -> [[import_uwh, export_uwh], ...] as last written
        self.saves = 0
        self.rejected = 0    # additions refused (negative or absurd): a bug if ever > 0
        self.restored_from = None

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
        if import_uwh < 0 or export_uwh < 0:
            self.rejected += 1
            log.error("ledger", "refused a negative addition %s ch%d %d/%d µWh", key, ch,
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

    def load(self):
        """Restore the newest valid slot. Returns the sequence number (0: nothing saved)."""
        best = None
        for i in (0, 1):
            try:
                with open(self._slot(i)) as f:
                    text = f.read()
            except OSError:
                continue
            try:
                doc = decode(text)
            except (LedgerError, ValueError) as e:
                log.warning("ledger", "%s unusable: %s (the other slot is used)", self._slot(i), e)
                continue
            if best is None or doc["seq"] > best["seq"]:
                best = doc
        if best is None:
            return 0
        self.seq = best["seq"]
        self.meters = best["meters"]
        self.saved = {k: [c[:] for c in m["ch"]] for k, m in self.meters.items()}
        self.restored_from = self._slot(self.seq % 2)
        return self.seq

    def save(self, provisional=None, epoch=0):
        """Write the next slot. provisional: {key: [µWh per channel]} of open periods."""
        out = {}
        for key, m in self.meters.items():
            prov = provisional.get(key) if provisional else None
            last = self.saved.get(key) or []
            chans = []
            for ch, (imp, exp) in enumerate(m["ch"]):
                imp += prov[ch] if prov and ch < len(prov) else 0
                if ch < len(last):    # never below what a restart could already have restored
                    imp, exp = max(imp, last[ch][0]), max(exp, last[ch][1])
                chans.append([imp, exp])
            out[key] = {"name": m["name"], "addr": m["addr"], "ch": chans}
        seq = self.seq + 1
        text = encode({"v": VERSION, "seq": seq, "t": epoch, "meters": out})
        with open(self._slot(seq % 2), "w") as f:
            f.write(text)
        self.seq = seq
        self.saved = {k: [c[:] for c in m["ch"]] for k, m in out.items()}
        self.saves += 1
        return seq

    def files(self):
        return [p for p in (self._slot(0), self._slot(1)) if _exists(p)]


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False
