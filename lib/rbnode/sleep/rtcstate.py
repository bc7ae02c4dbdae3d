"""Sleep-mode state in RTC memory: energy totals and the last latch of every meter, kept
across deep sleep without a flash write per wake.

    b"RBS" + version byte, then a ledger-style slot (JSON document + CRC-32 line, ledger.py)

A record that does not start with the magic, has another version, fails its CRC or does
not parse (RTC memory after a brown-out holds garbage) is rejected with the reason, and the
node falls back to the flash ledger. ESP32 RTC memory holds 2 KB: a record of four 3-channel
meters is about 600 bytes; a record that would not fit is not written (the flash ledger is
written instead, see sleeper.py).
"""
from ..ledger import LedgerError, check_meters, decode, encode

MAGIC = b"RBS"
VERSION = 1
SIZE = 2048


class StateError(ValueError):
    pass


def pack(ledger, anchors, wakes, flash_ms, unchecked=False, now=0, cal=None):
    """The record as bytes. anchors: {key: RTC ms of the meter's last good latch};
    unchecked: the totals came from the flash ledger and are not compared with the broker's
    retained totals yet (wakenet.py); now: RTC ms of the writing (a replayed old state is
    told by it); cal: the calendar's state across the sleep (sleeper.py: the tariff of the
    open period, the clock's validity and last sync, the wake's due time)."""
    doc = {"v": 1, "seq": ledger.seq, "meters": ledger.meters, "anchors": anchors,
           "wakes": wakes, "flash_ms": flash_ms, "unchecked": unchecked, "t": now}
    if cal:
        doc.update(cal)
    body = encode(doc)
    data = MAGIC + bytes((VERSION,)) + body.encode()
    if len(data) > SIZE:
        raise StateError("the sleep state needs %d bytes, RTC memory has %d" % (len(data), SIZE))
    return data


def unpack(data):
    """The record's document; raises StateError naming what is wrong."""
    if not data:
        raise StateError("RTC memory is empty")
    if data[:3] != MAGIC:
        raise StateError("no sleep state in RTC memory (magic %r)" % bytes(data[:3]))
    if data[3] != VERSION:
        raise StateError("sleep state version %d, this firmware reads %d" % (data[3], VERSION))
    try:
        doc = decode(bytes(data[4:]))
        check_meters(doc.get("meters"), named=False)
    except LedgerError as e:
        raise StateError("sleep state corrupted: %s" % e)
    anchors = doc.get("anchors")
    if not isinstance(anchors, dict) or not all(isinstance(v, int) for v in anchors.values()) \
            or not isinstance(doc.get("wakes"), int) or not isinstance(doc.get("seq"), int) \
            or not isinstance(doc.get("t", 0), int) or not isinstance(doc.get("flash_ms", 0), int):
        raise StateError("sleep state incomplete")
    return doc
