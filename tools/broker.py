"""A private mosquitto on a free loopback port, for tests and `make run` (CPython)."""
import os
import shutil
import socket
import subprocess
import tempfile

from tools.hostenv import stop_process, wait_port


def find_mosquitto():
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if cand and os.path.exists(cand):
            return cand
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    """`Broker()` starts mosquitto on 127.0.0.1:<free port>; `stop()` ends it."""

    def __init__(self, port=None, verbose=False):
        exe = find_mosquitto()
        if not exe:
            raise RuntimeError("mosquitto not found: run `make setup` (installs Debian's mosquitto)")
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="rbnode-mosq-")
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % self.port)
            f.write("log_type error\nlog_type warning\n" if not verbose else "log_type all\n")
        self.proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=None if verbose else subprocess.DEVNULL)
        if not wait_port(self.host, self.port):
            self.stop()
            raise RuntimeError("mosquitto did not open port %d" % self.port)

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
