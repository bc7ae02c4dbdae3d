"""What a host-run node leaves on its simulated flash and board, read on the host (CPython)
by the runner, the tests and the benchmarks: the energy ledger, the sleep state in RTC
memory. Parsed and CRC-checked here, independently of lib/rbnode.
"""
import binascii
import json
import os


def read_ledger(fs, path="energy"):
    """The newest valid ledger slot, parsed and CRC-checked here (not by lib/rbnode)."""
    best = None
    for i in (0, 1):
        p = os.path.join(fs, "%s.%d" % (path, i))
        if not os.path.exists(p):
            continue
        with open(p, "rb") as f:
            text = f.read().decode()
        body, _, crc = text.rstrip("\n").rpartition("\n")
        if not body or int(crc, 16) != binascii.crc32(body.encode()):
            continue
        doc = json.loads(body)
        if best is None or doc["seq"] > best["seq"]:
            best = doc
    return best


def totals_by_name(ledger):
    """{meter name: [[import_wh, export_wh], ...]} of a ledger document."""
    return {m["name"]: [[c[0] / 1e6, c[1] / 1e6] for c in m["ch"]]
            for m in ledger["meters"].values()}


def rtc_state(board_dir):
    """The sleep state in a host board's RTC memory (None: there is none); ValueError when
    it is not a valid one."""
    p = os.path.join(board_dir, "rtc_memory")
    if not os.path.exists(p):
        return None
    with open(p, "rb") as f:
        data = f.read()
    if data[:4] != b"RBS\x01":
        raise ValueError("RTC memory: bad magic %r" % data[:8])
    body, _, crc = data[4:].decode().rstrip("\n").rpartition("\n")
    if int(crc, 16) != binascii.crc32(body.encode()):
        raise ValueError("RTC memory: CRC mismatch")
    return json.loads(body)
