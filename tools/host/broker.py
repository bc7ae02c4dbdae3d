"""A private mosquitto on a free loopback port, for tests and `make run` (CPython)."""
import os
import shutil
import socket
import subprocess
import tempfile

from tools.host.hostenv import stop_process, wait_port


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


def make_test_ca(d, cn="127.0.0.1"):
    """A throw-away CA and a server certificate for cn, signed by it, in directory d
    (openssl CLI). Returns {"ca": ca.pem, "cert": server.pem, "key": server.key}."""
    exe = shutil.which("openssl")
    if not exe:
        raise RuntimeError("openssl not found (Debian package openssl)")
    p = {k: os.path.join(d, f) for k, f in (("ca", "ca.pem"), ("ca_key", "ca.key"),
                                            ("csr", "server.csr"), ("cert", "server.pem"),
                                            ("key", "server.key"), ("ext", "server.ext"))}
    with open(p["ext"], "w") as f:
        f.write("subjectAltName=IP:%s\n" % cn)
    for args in (["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                  "-subj", "/CN=rbnode test CA", "-keyout", p["ca_key"], "-out", p["ca"]],
                 ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                  "-keyout", p["key"], "-out", p["csr"]],
                 ["x509", "-req", "-in", p["csr"], "-CA", p["ca"], "-CAkey", p["ca_key"],
                  "-CAcreateserial", "-days", "2", "-extfile", p["ext"], "-out", p["cert"]]):
        subprocess.run([exe] + args, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return {"ca": p["ca"], "cert": p["cert"], "key": p["key"]}


class Broker:
    """`Broker()` starts mosquitto on 127.0.0.1:<free port>; `stop()` ends it.
    With tls={"cert": ..., "key": ...} it also listens with TLS on `tls_port`; `extra`: more
    mosquitto.conf lines."""

    def __init__(self, port=None, verbose=False, tls=None, extra=""):
        exe = find_mosquitto()
        if not exe:
            raise RuntimeError("mosquitto not found: run `make setup` (installs Debian's mosquitto)")
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="rbnode-mosq-")
        self.tls_port = free_port() if tls else None
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % self.port)
            if tls:
                f.write("listener %d 127.0.0.1\ncertfile %s\nkeyfile %s\n"
                        % (self.tls_port, tls["cert"], tls["key"]))
            if os.geteuid() == 0:   # else mosquitto drops to a user that cannot read the
                f.write("user root\n")     # certificates or password file in a test's folder
            f.write("log_type error\nlog_type warning\n" if not verbose else "log_type all\n")
            f.write(extra)
        self.proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=None if verbose else subprocess.DEVNULL)
        for p in (self.port, self.tls_port):
            if p and not wait_port(self.host, p):
                self.stop()
                raise RuntimeError("mosquitto did not open port %d" % p)

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
