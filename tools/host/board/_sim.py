# Link from the host board (unix port) to the simulator, or to an in-process bus.
#
# I2C frame, node -> bench: op u8 (1 transfer, 2 set freq), addr u8, wlen u8, rlen u16 LE,
# then wlen bytes. Bench -> node: status u8 (0 ok, 1 address NACK, 2 data NACK, 3 wedged),
# n u16 LE, then n bytes (the data, or what a failed read leaves in the host buffer).
import json
import os
import socket

STATUS_ERRNO = (0, 19, 5, 110)  # ok, ENODEV, EIO, ETIMEDOUT (Linux errno numbers)

_inproc = None  # a tools.host.sim VirtualBus when a test hosts the simulator in-process
_ctl = None


def attach(bus):
    """Host the simulator in this process (unit tests): I2C then talks to `bus` directly."""
    global _inproc
    _inproc = bus


def inproc():
    return _inproc


def address():
    spec = os.getenv("RBAMP_SIM")
    if not spec:
        return None
    host, _, port = spec.rpartition(":")
    return host or "127.0.0.1", int(port)


def connect(hello):
    addr = address()
    if addr is None:
        raise OSError(107, "no bench: set RBAMP_SIM=host:port (see tools/host/hostrun.py)")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(socket.getaddrinfo(addr[0], addr[1])[0][-1])
    try:
        s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: one round trip per transaction
    except OSError:
        pass
    s.write(hello)
    return s


def ctl(op, **kw):
    """One control request to the simulator; returns the reply dict or raises OSError."""
    global _ctl
    if _ctl is None:
        _ctl = connect(b"CTL\n")
    kw["op"] = op
    _ctl.write(json.dumps(kw).encode() + b"\n")
    rsp = json.loads(_ctl.readline())
    if not rsp.get("ok"):
        raise OSError(5, "bench: " + str(rsp.get("error")))
    return rsp


def read_exact(s, buf, mv=None):
    """Fill buf from the stream; the common case (one readinto) allocates nothing."""
    n = s.readinto(buf)
    if n is None or n <= 0:
        raise OSError(104, "bench connection closed")
    while n < len(buf):
        if mv is None:
            mv = memoryview(buf)
        k = s.readinto(mv[n:])
        if not k:
            raise OSError(104, "bench connection closed")
        n += k
