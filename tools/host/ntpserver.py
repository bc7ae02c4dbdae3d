"""A local (S)NTP server for the tests, answering the way real servers do and the ways they
go wrong: NtpServer(mode, unix_time).port on 127.0.0.1, stop().

Modes: "ok" (stratum 2, transmit time = unix_time or now), "kod" (stratum 0, kiss-o'-death
RATE), "unsync" (leap indicator 3), "silent" (never answers), "noise" (first a stranger's
datagram, a mode-3 echo, a reply to another request and a mode-3 packet with this request's
originate, both 1000 days off, then the right answer), "zero"
(a reply without a transmit time), "short" (20 bytes, then the right answer).
`offset` (seconds, may change while it runs): a clock running at the host's rate this far
from the host's (unix_time None); the mode may change while it runs too.
"""
import socket
import struct
import threading
import time

NTP_UNIX = 2208988800


def ntp_stamp(t):
    secs = int(t) + NTP_UNIX
    frac = int(round((t - int(t)) * 2 ** 32)) & 0xFFFFFFFF
    return struct.pack(">II", secs & 0xFFFFFFFF, frac)      # era 1 wraps from 2036


class NtpServer:
    def __init__(self, mode="ok", unix_time=None, offset=0.0):
        self.mode = mode
        self.unix_time = unix_time
        self.offset = offset
        self.requests = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _reply(self, req, li=0, stratum=2, ref=b"GPS\x00", origin=None, transmit=None, mode=4):
        now = self.unix_time if self.unix_time is not None else time.time() + self.offset
        first = (li << 6) | (4 << 3) | mode
        stamp = ntp_stamp(now) if transmit is None else transmit
        return (bytes([first, stratum, 6, 0xEC]) + bytes(8) + ref + ntp_stamp(now - 10)
                + (req[40:48] if origin is None else origin) + ntp_stamp(now) + stamp)

    def _serve(self):
        while not self._stop:
            try:
                req, addr = self.sock.recvfrom(512)
            except OSError:
                continue
            self.requests += 1
            m = self.mode
            if m == "silent":
                continue
            out = []
            if m == "ok":
                out = [self._reply(req)]
            elif m == "kod":
                out = [self._reply(req, li=3, stratum=0, ref=b"RATE", transmit=bytes(8))]
            elif m == "unsync":
                out = [self._reply(req, li=3, stratum=16)]
            elif m == "zero":
                out = [self._reply(req, transmit=bytes(8))]
            elif m == "short":
                out = [self._reply(req)[:20], self._reply(req)]
            elif m == "noise":
                stale = ntp_stamp((self.unix_time or time.time()) - 86400 * 1000)
                out = [b"hello", req, self._reply(req, origin=b"\x01" * 8, transmit=stale),
                       self._reply(req, transmit=stale, mode=3), self._reply(req)]
            for p in out:
                self.sock.sendto(p, addr)

    def stop(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()
