"""Control client of the simulator, for tests and host tools (CPython)."""
import json
import socket


class BenchError(RuntimeError):
    pass


class SimClient:
    def __init__(self, host, port, timeout=10.0):
        self.addr = (host, port)
        self.sock = socket.create_connection(self.addr, timeout=timeout)
        self.sock.sendall(b"CTL\n")
        self.f = self.sock.makefile("rb")

    def call(self, op, **kw):
        kw["op"] = op
        self.sock.sendall((json.dumps(kw) + "\n").encode())
        line = self.f.readline()
        if not line:
            raise BenchError("bench closed the control connection")
        rsp = json.loads(line)
        if not rsp.pop("ok", False):
            raise BenchError(rsp.get("error", "bench error"))
        return rsp

    def __getattr__(self, op):
        if op.startswith("_"):
            raise AttributeError(op)
        return lambda **kw: self.call(op, **kw)

    def close(self):
        self.sock.close()
