"""This machine's tz database (Debian's tzdata), as the tz and tariff tests read it: each zone
file's own POSIX rule, its footer. (Not named tzdata: zoneinfo imports a package of that name.)"""
import struct

ZONEINFO = "/usr/share/zoneinfo"


def read_tzif(path):
    """(POSIX rule of the footer, last explicit transition) of a TZif v2+ file, or None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"TZif" or data[4:5] < b"2":
        return None
    cnt = struct.unpack(">6l", data[20:44])
    isut, isstd, leap, timecnt, typecnt, charcnt = cnt
    v1 = 44 + timecnt * 5 + typecnt * 6 + charcnt + leap * 8 + isstd + isut
    cnt2 = struct.unpack(">6l", data[v1 + 20:v1 + 44])
    n = cnt2[3]
    last = struct.unpack(">q", data[v1 + 44 + 8 * (n - 1):v1 + 44 + 8 * n])[0] if n else None
    footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode()
    return (footer, last) if footer else None


def zone_rule(name):
    """The POSIX rule of a zone of the database (its file's footer)."""
    return read_tzif("%s/%s" % (ZONEINFO, name))[0]
