"""A local HTTP server for the update tests: CPython's http.server, serving files from a
dict, with the faults a download meets.

    srv = OtaServer({"/good.rbota": data})
    srv.url("/good.rbota")               # http://127.0.0.1:<port>/good.rbota
    srv.cut["/good.rbota"] = 5000        # send 5000 bytes of the body, then close
    srv.rate = 20000                     # bytes per second (0: as fast as possible)
    srv.wait_sent("/good.rbota", 40000)  # until that much of it went out
    srv.stop()

And the bundles they serve:

    key, pub = new_key(tmp_path)         # an RSA-2048 key, and its "ota.key" for config.json
    make_bundle(tmp_path, "0.2.0")       # `make ota-bundle`, as a user runs it
    variant(tmp_path, key, "0.3.0", "rbnode/net/link.py", change)   # one source file changed

And what the tests say to the node and read back (a Recorder, tools/host/mqttrec.py):

    command(rec, base, "ota", {"url": ..., "version": "0.2.0"}, "up")   # its <base>/result
    ota_status(rec, base, lambda d: d["state"] == "ok", 60, "healthy")  # a <base>/ota doc
    t0 = single_load(run, 1200.0)        # only ui3 ch 0 draws: the truth (Wh) from here
    n, mark = reboot(run, rec)           # the node reset itself (or power_cut=True): again
    running_version(rec, base, run, n, mark)     # "0.2.0": what its health says, connected
"""
import http.server
import json
import os
import subprocess
import threading
import time

from nodeharness import read_ledger
from tools import ota

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def new_key(tmp_path):
    key = ota.keygen(str(tmp_path / "key.pem"), 2048)
    return key, ota.pubkey_config(key)["key"]


def make_bundle(tmp_path, version):
    """`make ota-bundle`, as a user runs it (the key of new_key)."""
    out = tmp_path / ("rbnode-%s.rbota" % version)
    p = subprocess.run(["make", "-s", "ota-bundle", "KEY=%s" % (tmp_path / "key.pem"),
                        "VERSION=%s" % version, "OUT=%s" % out], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0 and out.exists(), p.stdout + p.stderr
    return out.read_bytes()


def variant(tmp_path, key, version, path, change):
    """A bundle whose source file `path` (lib/...) is changed by change(text)."""
    exe = ota.mpy_cross()
    work = tmp_path / ("v" + version)
    work.mkdir()
    files = dict(ota.compile_app(version, exe, str(work)))
    with open(os.path.join(ROOT, "lib", path)) as f:
        src = change(f.read())
    (work / "changed.py").write_text(src)
    target = path[:-3] + ".mpy"
    subprocess.run([exe, "-o", str(work / "changed.mpy"), "-s", path, str(work / "changed.py")],
                   check=True)
    files[target] = (work / "changed.mpy").read_bytes()
    return ota.build(sorted(files.items()), version, ota.mpy_format(exe), key)


def command(rec, base, name, payload, rid, timeout):
    """The command `name` with payload and id rid: its result, once the node sent it."""
    mark = rec.mark()
    rec.publish(base + "/cmd/" + name, json.dumps(dict(payload, id=rid)))
    return rec.wait(lambda m: m.topic == base + "/result" and m.json().get("id") == rid,
                    timeout=timeout, start=mark, what="%s result" % name).json()


def ota_status(rec, base, pred, timeout, what, start=0):
    """The first <base>/ota status (from message start on) that pred accepts."""
    return rec.wait(lambda m: m.topic == base + "/ota" and m.payload and pred(m.json()),
                    timeout=timeout, start=start, what=what).json()


def lifetime(run):
    """The node's flash ledger: its lifetime import, µWh (0 before the first save)."""
    led = read_ledger(run.fs)
    return sum(c[0] for m in led["meters"].values() for c in m["ch"]) if led else 0


def single_load(run, watts, module="ui3"):
    """Once the node measures: only channel 0 of module draws (watts); the simulator's
    truth of it (Wh) now, to measure the node's energy from."""
    ctl = run.ctl
    run.wait_for("module(s) measuring", timeout=60)
    for m in ctl.modules()["modules"]:
        for ch in range(m["channels"]):
            ctl.set_load(module=m["name"], ch=ch, load=0)
    ctl.set_load(module=module, ch=0, load=watts)
    return ctl.truth()["truth"][module][0][0]


def reboot(run, rec, power_cut=False):
    """The node process ended (reset) or is cut off (power_cut): start the board again.
    Returns where its output and its messages begin."""
    if power_cut:
        run.proc.kill()
        run.proc.wait()
        run.node.power_on()
    else:
        run.proc.wait(60)
        assert run.node.finish() is not None, run.output()[-3000:]
    n, mark = len(run.lines), rec.mark()      # the process before is gone
    run.start()
    return n, mark


def running_version(rec, base, run, n, mark):
    """The version the restarted node runs (its health message after the connect)."""
    run.wait_for("link: connected", timeout=60, start=n)
    h = rec.wait(lambda m: m.topic == base + "/health" and m.json().get("fw"), timeout=30,
                 start=mark, what="health after the restart").json()
    return h["fw"]


class OtaServer:
    def __init__(self, files):
        self.files = dict(files)
        self.cut = {}
        self.rate = 0
        self.sent = {}
        self.done = {}                  # path -> time.monotonic() of its last byte
        self.requests = []
        self._cv = threading.Condition()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                owner.requests.append(self.path)
                data = owner.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                limit = owner.cut.get(self.path, len(data))
                pos = 0
                try:
                    while pos < limit:
                        n = min(4096, limit - pos)
                        self.wfile.write(data[pos:pos + n])
                        self.wfile.flush()
                        pos += n
                        with owner._cv:
                            owner.sent[self.path] = pos
                            owner._cv.notify_all()
                        if owner.rate:
                            time.sleep(n / owner.rate)
                except OSError:
                    return
                with owner._cv:
                    if pos == len(data):
                        owner.done[self.path] = time.monotonic()
                    owner._cv.notify_all()
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def wait_sent(self, path, n, timeout=60):
        deadline = time.monotonic() + timeout
        with self._cv:
            while self.sent.get(path, 0) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: %d of %d bytes sent" % (
                        path, self.sent.get(path, 0), n))
                self._cv.wait(left)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
