"""One SNTP query (RFC 4330), without blocking the event loop, and believed only when the
reply is one: issue 21's wall clock.

    ms = await sntp.query("ntp.example", timeout_ms=2000)   # Unix time in ms, UTC
    # SntpError naming the server and what was wrong; nothing else is raised

micropython-lib's ntptime waits in a blocking recv (up to a second with the DRDY reader and
MQTT stopped) and takes any 48 bytes for the time. A reply here counts only when it is a
server's (mode 4) answer to this request (its originate timestamp is the random transmit
timestamp sent), from a synchronised server (leap indicator not 3, stratum 1-15: stratum 0 is
a kiss-o'-death such as RATE or DENY, named in the error) with a transmit time; any other
datagram is ignored and the wait goes on. The time is the server's transmit time plus half
the round trip. NTP's era rollover (2036) is handled: seconds below 2**31 are era 1.
The server's name is looked up by the port's getaddrinfo, which blocks while its DNS query
runs (as it does for mqtt_as's connect); the wait for the answer never does.
"""
import asyncio
import random
import socket
import struct
from time import ticks_diff, ticks_ms

NTP_UNIX = 2208988800          # seconds from 1900 to 1970
EAGAIN = (11, 110)             # no datagram yet (EAGAIN; ETIMEDOUT on some lwIP builds)


class SntpError(Exception):
    pass


def request():
    """A client request (version 4, mode 3) and its transmit timestamp (8 random bytes)."""
    stamp = struct.pack(">II", random.getrandbits(32), random.getrandbits(32))
    return b"\x23" + bytes(39) + stamp, stamp


def answer(data, stamp):
    """The reply's Unix time in ms at its transmit; None if the datagram is not the answer to
    this request (not ours, or no server's); SntpError if it is, saying why it is unusable."""
    if len(data) < 48 or data[0] & 7 != 4 or bytes(data[24:32]) != stamp:
        return None
    li, stratum = data[0] >> 6, data[1]
    if stratum == 0:
        code = bytes(data[12:16])
        raise SntpError("refused (kiss-o'-death %s)" % (
            code.decode() if all(65 <= c <= 90 for c in code) else "code %r" % code))
    if li == 3 or stratum > 15:
        raise SntpError("not synchronised (leap indicator %d, stratum %d)" % (li, stratum))
    secs, frac = struct.unpack(">II", data[40:48])
    if not secs and not frac:
        raise SntpError("no transmit time in the reply")
    if secs < 0x80000000:      # era 1: from 2036-02-07
        secs += 0x100000000
    return (secs - NTP_UNIX) * 1000 + (frac * 1000 >> 32)


async def query(host, port=123, timeout_ms=2000):
    where = "%s:%d" % (host, port)
    try:
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
    except (OSError, IndexError) as e:
        raise SntpError("NTP server %s: not found (%s)" % (where, e))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        pkt, stamp = request()
        t0 = ticks_ms()
        try:
            s.sendto(pkt, addr)
        except OSError as e:
            raise SntpError("NTP server %s: not sent (%s)" % (where, e))
        while True:
            try:
                data = s.recv(64)
            except OSError as e:
                if e.args[0] not in EAGAIN:
                    raise SntpError("NTP server %s: %s" % (where, e))
                if ticks_diff(ticks_ms(), t0) >= timeout_ms:
                    raise SntpError("NTP server %s: no answer in %d ms" % (where, timeout_ms))
                await asyncio.sleep_ms(10)
                continue
            try:
                ms = answer(data, stamp)
            except SntpError as e:
                raise SntpError("NTP server %s: %s" % (where, e))
            if ms is not None:
                return ms + ticks_diff(ticks_ms(), t0) // 2
    finally:
        s.close()
