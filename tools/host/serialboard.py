"""A board on a serial port, for `make deploy` and `make dev` without hardware.

    python tools/host/serialboard.py DIR [--link PATH] [--bench HOST:PORT] [--log FILE]

The MicroPython unix port, with the host board (tools/host/board) and the virtual rbAmp
bench, stands behind a pseudo-terminal the way a board stands behind its USB serial port:
mpremote (and so `make deploy PORT=DIR/tty`, `make dev PORT=DIR/tty`) talks to it as to a
board. DIR holds its flash (DIR/fs, empty at first: a freshly flashed board) and its board
state (DIR/board). Prints `SERIALBOARD READY <port>` once the port exists; the console
(everything the board prints) goes to --log (default DIR/console.log). Without --bench it
starts a simulator of its own (the default scenario).

Where the unix port is not a board, this makes it one:
  - reset: a board restarts and runs boot.py and main.py. Ctrl-D in the REPL (a soft reset)
    and machine.reset() end the unix process instead; the process is started again,
    printing `MPY: soft reboot` for a soft reset, and after a soft reset in the raw REPL
    it runs boot.py only and is back in the raw REPL, as a board is.
  - Ctrl-C: a board's UART turns the interrupt character into a KeyboardInterrupt while
    code runs and micropython.kbd_intr() has not turned it off (mpremote's `mount` does,
    around its binary protocol). The unix port only knows SIGINT: a 0x03 from the host
    becomes SIGINT exactly when the process has its SIGINT handler installed (that is
    MicroPython's own kbd_intr state); otherwise the byte is passed on as data.
  - a port nobody listens to: a UART drops what it sends; so does this.
"""
import argparse
import errno
import os
import select
import signal
import subprocess
import sys
import tty

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tools.host import hostenv  # noqa: E402
from tools.host.hostrun import SOFT, HostNode  # noqa: E402

RAW_BANNER = b"raw REPL; CTRL-B to exit"
SOFT_REBOOT = b"MPY: soft reboot\r\n"
SIGINT_BIT = 1 << (signal.SIGINT - 1)


def sigint_caught(pid):
    """Whether the process has a SIGINT handler (MicroPython installs one while code runs
    with the interrupt character on, and removes it for kbd_intr(-1) and at the prompt)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & SIGINT_BIT)
    except OSError:
        pass
    return False


class SerialBoard:
    def __init__(self, run_dir, bench_addr, link=None, log=None):
        self.node = HostNode(run_dir, bench_addr, files=(), realtime_sleep=True,
                             env={"HOSTBOARD_SERIAL": "1"}, mp_args=["-i"])
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)          # no echo, no line editing: a UART is a byte pipe
        os.set_blocking(self.master, False)
        self.port = link or os.path.join(run_dir, "tty")
        if os.path.lexists(self.port):
            os.remove(self.port)
        os.symlink(os.ttyname(self.slave), self.port)
        self.log = open(log or os.path.join(run_dir, "console.log"), "ab", buffering=0)
        self.raw = False        # the REPL was last in raw mode (a soft reset keeps it there)
        self.pending = b""      # bytes from the host while the board restarts
        self.tail = b""
        self.child = None
        self.stdin = None
        self.stopping = False

    # ---- the board's process ---------------------------------------------------------------
    def _spawn(self):
        env = dict(self.node.env)
        if self.raw:
            env["HOSTBOARD_RAW_REPL"] = "1"
        else:
            env.pop("HOSTBOARD_RAW_REPL", None)
        self.node.env = env
        r, self.stdin = os.pipe()       # a pipe: every byte passes as it is (no tty rules)
        os.set_blocking(self.stdin, False)
        self.child = self.node.start(stdout=subprocess.PIPE, stdin=r)
        os.close(r)
        os.set_blocking(self.child.stdout.fileno(), False)
        if self.raw:
            self.pending = b"\x01" + self.pending     # back in the raw REPL after boot.py
        self._to_child(b"")

    def _to_child(self, data):
        self.pending += data
        if self.stdin is None or not self.pending:
            return
        try:
            n = os.write(self.stdin, self.pending)
            self.pending = self.pending[n:]
        except BlockingIOError:
            pass            # its pipe is full: the rest later
        except OSError:
            pass            # the process is ending: the bytes wait for the next one

    def _restarted(self):
        """The process ended: come back as the board would."""
        self.child.wait()
        try:
            while True:
                data = os.read(self.child.stdout.fileno(), 4096)
                if not data:
                    break
                self._to_host(data)
        except (BlockingIOError, OSError):
            pass
        self.child.stdout.close()
        cause = self.node.finish()
        if cause is None:           # the process simply ended: Ctrl-D, a soft reset
            self.node.cause = SOFT
            self._to_host(SOFT_REBOOT)
        else:                       # machine.reset(), a watchdog, a deep sleep
            self.raw = False
        os.close(self.stdin)
        self.stdin = None
        self._spawn()

    # ---- the serial line -------------------------------------------------------------------
    def _to_host(self, data):
        self.log.write(data)
        self.tail = (self.tail + data)[-64:]
        if RAW_BANNER in self.tail:
            self.raw = True
            self.tail = b""
        try:
            os.write(self.master, data)
        except (BlockingIOError, OSError):
            pass            # nobody reads the port: a UART drops it

    def _from_host(self, data):
        out = bytearray()
        for b in data:
            if b == 0x03 and self.child is not None and self.child.poll() is None \
                    and sigint_caught(self.child.pid):
                os.kill(self.child.pid, signal.SIGINT)
                continue
            if b == 0x02:
                self.raw = False
            out.append(b)
        self._to_child(bytes(out))

    def run(self):
        self._spawn()
        print("SERIALBOARD READY %s" % self.port, flush=True)
        while not self.stopping:
            fds = [self.master]
            if self.child is not None:
                fds.append(self.child.stdout.fileno())
            try:
                ready, _, _ = select.select(fds, [], [], 0.05)
            except InterruptedError:
                continue
            if self.master in ready:
                try:
                    self._from_host(os.read(self.master, 4096))
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EIO):
                        raise
            if self.child is not None and self.child.stdout.fileno() in ready:
                try:
                    data = os.read(self.child.stdout.fileno(), 4096)
                except (BlockingIOError, OSError):
                    data = None
                if data:
                    self._to_host(data)
            self._to_child(b"")
            if self.child is not None and self.child.poll() is not None:
                self._restarted()
        self.close()

    def close(self):
        if self.child is not None:
            hostenv.stop_process(self.child, grace=2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if os.path.islink(self.port):
            os.remove(self.port)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--link")
    ap.add_argument("--bench")
    ap.add_argument("--log")
    a = ap.parse_args(argv)
    os.makedirs(a.dir, exist_ok=True)
    bench = None
    if a.bench:
        host, port = a.bench.rsplit(":", 1)
        addr = (host, int(port))
    else:
        bench = hostenv.SimProcess()
        addr = bench.address
    board = SerialBoard(os.path.abspath(a.dir), addr, a.link, a.log)

    def stop(*_):
        board.stopping = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        board.run()
    finally:
        if bench:
            bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
