# The ledger's integrity rules on the unix port (issue 16): whatever bytes a slot holds,
# loading never fails the node, never gives a total below the last good copy, and the good
# copy is never overwritten; with no usable slot the files are set aside, never overwritten;
# a filesystem that refuses writes is an OSError the node reports, never a lost good copy.
# timeout: 300
import json
import os

from mptest import eq, raises, run

from rbnode.ledger import MAX_UWH, Ledger, LedgerError, crc32, encode

P = "fz"


class Rng:
    """random.Random for MicroPython (one module-wide generator there): seeded, repeatable."""
    def __init__(self, seed):
        self.x = seed * 2654435761 % 2**32 or 1

    def getrandbits(self, n):
        out = 0
        for _ in range((n + 31) // 32):
            x = self.x
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            self.x = x
            out = (out << 32) | x
        return out & ((1 << n) - 1)

    def randint(self, a, b):
        return a + self.getrandbits(30) % (b - a + 1)

    def choice(self, seq):
        return seq[self.randint(0, len(seq) - 1)]


def _clean():
    for f in os.listdir("."):
        if f.startswith(P + "."):
            os.remove(f)


def _read(p):
    try:
        with open(p, "rb") as f:
            return f.read()
    except OSError:
        return None


def _write(p, data):
    with open(p, "wb") as f:
        f.write(data)


def _good(seq, scale=1):
    return {"v": 1, "seq": seq, "t": 0, "meters": {
        "0a0b": {"name": "ui3", "addr": 80, "ch": [[1000 * scale, 5], [7, 0], [0, 0]]},
        "0c0d": {"name": "pv", "addr": 81, "ch": [[33 * scale, 44 * scale]]}}}


def _crc_doc(doc_text):
    """A document with a valid CRC, whatever it says."""
    b = doc_text.encode() if isinstance(doc_text, str) else doc_text
    return b + b"\n%08x\n" % (crc32(b) & 0xFFFFFFFF)


def _wrong_fields(rng):
    """Valid CRC, wrong content: missing or mistyped fields, negative or absurd values."""
    d = _good(rng.randint(1, 9))
    m = d["meters"]["0a0b"]
    k = rng.randint(0, 17)
    if k == 0:
        del d["seq"]
    elif k == 1:
        d["seq"] = "7"
    elif k == 2:
        d["seq"] = -3
    elif k == 3:
        m["ch"] = "[[1,2]]"
    elif k == 4:
        m["ch"] = [[1, 2, 3]]
    elif k == 5:
        m["ch"][0][0] = -5
    elif k == 6:
        m["ch"][0][0] = MAX_UWH + 1
    elif k == 7:
        m["ch"][0][1] = 1.5
    elif k == 8:
        d["v"] = 2
    elif k == 9:
        d["meters"] = []
    elif k == 10:
        d["meters"]["0a0b"] = None
    elif k == 11:
        m["ch"] = []
    elif k == 12:
        m["ch"][1] = True
    elif k == 13:
        del m["name"]
    elif k == 14:
        d["seq"] = True
    elif k == 15:
        m["ch"] = [[0, 0]] * 4
    elif k == 16:
        return _crc_doc(b"[1, 2, 3]")
    else:
        return _crc_doc("\"" + "\xff" * 5)
    return _crc_doc(json.dumps(d))


def _corrupt(rng, good):
    k = rng.randint(0, 7)
    if k == 0:                                    # random bytes, high bit included
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
    if k == 1:                                    # erased flash
        return b"\xff" * rng.choice((1, 64, 4096))
    if k == 2:                                    # truncated (torn write)
        return good[:rng.randint(0, len(good) - 1)]
    if k == 3:                                    # one flipped bit
        b = bytearray(good)
        i = rng.randint(0, len(b) - 1)
        b[i] ^= 1 << rng.randint(0, 7)
        return bytes(b)
    if k == 4:                                    # a byte >= 0x80 in place
        b = bytearray(good)
        b[rng.randint(0, len(b) - 1)] = 0x80 | rng.getrandbits(7)
        return bytes(b)
    if k == 5:
        return _wrong_fields(rng)
    if k == 6:                                    # zeros, empty
        return b"\x00" * rng.randint(0, 100)
    return good[:-3] + b"\xff\xfe\n"              # CRC line not hex


def test_one_slot_corrupted_the_other_is_used_and_kept():
    rng = Rng(16)
    n = 0
    for bad_slot in (0, 1):
        for i in range(520):
            _clean()
            good_seq = 10 + (1 - bad_slot)          # the good slot's own parity
            good = encode(_good(good_seq, 1 + i)).encode()
            _write("%s.%d" % (P, 1 - bad_slot), good)
            bad = _corrupt(rng, encode(_good(good_seq + 1, 2 + i)).encode())
            _write("%s.%d" % (P, bad_slot), bad)
            led = Ledger(P)
            seq = led.load()                         # never raises
            if seq == good_seq + 1:                  # the corruption left a valid newer slot
                continue                             # (a flip in the JSON's spacing)
            eq(seq, good_seq, "slot %d: %r" % (bad_slot, bad[:60]))
            eq(led.total("0a0b", 0), (1000 * (1 + i), 5))
            assert led.problems, "a rejected slot has a reason"
            led.save()                               # goes to the bad slot, never the good one
            eq(_read("%s.%d" % (P, 1 - bad_slot)), good)
            eq(Ledger(P).load(), good_seq + 1)
            n += 1
    assert n >= 1000, n


def test_both_slots_bad_files_set_aside_and_never_overwritten():
    rng = Rng(61)
    for i in range(500):
        _clean()
        g = encode(_good(5)).encode()
        a, b = _corrupt(rng, g), _corrupt(rng, g)
        _write(P + ".0", a)
        _write(P + ".1", b)
        led = Ledger(P)
        seq = led.load()
        if seq:                                       # a flip left a valid document
            continue
        eq(sorted(led.set_aside), [P + ".0.bad-1", P + ".1.bad-1"])
        eq((_read(P + ".0.bad-1"), _read(P + ".1.bad-1")), (a, b))
        eq(led.meters, {})
        led.meter("0a0b", "ui3", 80, 1)
        led.add("0a0b", 0, 42, 0)
        led.save()
        led.save()
        eq((_read(P + ".0.bad-1"), _read(P + ".1.bad-1")), (a, b))
        led2 = Ledger(P)
        eq(led2.load(), 2)
        eq(led2.total("0a0b", 0), (42, 0))
    # a second time: the first copies stay, the new ones get the next names
    _clean()
    for r in range(2):
        _write(P + ".0", b"\xff" * 50)
        _write(P + ".1", b"garbage %d" % r)
        Ledger(P).load()
    eq(_read(P + ".0.bad-1"), b"\xff" * 50)
    eq((_read(P + ".1.bad-1"), _read(P + ".1.bad-2")), (b"garbage 0", b"garbage 1"))


def test_a_huge_or_unreadable_slot_is_rejected():
    _clean()
    _write(P + ".1", encode(_good(3)).encode())
    _write(P + ".0", b"{" * 20000)                 # bigger than a slot
    led = Ledger(P)
    eq(led.load(), 3)
    assert "bytes" in led.problems[0], led.problems
    _clean()
    os.mkdir(P + ".0")                              # a directory where a slot should be
    _write(P + ".1", encode(_good(3)).encode())
    led = Ledger(P)
    eq(led.load(), 3)
    raises(OSError, led.save)                       # EISDIR: reported, the good slot intact
    eq(Ledger(P).load(), 3)
    os.rmdir(P + ".0")


def test_nothing_is_saved_before_the_ledger_was_loaded():
    _clean()
    good = encode(_good(7)).encode()
    _write(P + ".1", good)
    led = Ledger(P)                                  # a crash path before load()
    e = raises(LedgerError, led.save)
    assert "not loaded" in str(e), e
    eq(_read(P + ".1"), good)
    eq(_read(P + ".0"), None)


def test_a_full_filesystem_never_costs_the_good_copy():
    # /dev/full: every write fails with ENOSPC, as on a full LittleFS
    _clean()
    good = encode(_good(8)).encode()
    _write(P + ".0", good)
    eq(os.system("ln -s /dev/full %s.1" % P), 0)
    led = Ledger(P)
    eq(led.load(), 8)
    for _ in range(5):
        e = raises(OSError, led.save)
        eq(e.args[0], 28)
    eq(_read(P + ".0"), good)
    led.add("0a0b", 0, 1, 0)
    os.remove(P + ".1")
    eq(led.save(), 9)                               # space again: saved, nothing lost
    eq(Ledger(P).load(), 9)
    led2 = Ledger(P)
    led2.load()
    eq(led2.total("0a0b", 0), (1001, 5))


run(globals())
