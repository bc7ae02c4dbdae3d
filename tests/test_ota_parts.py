"""Over-the-air update parts on the unix port (issue 22): bundles made by tools/ota.py (the
`cryptography` package signs them), installed by rbnode/ota/bundle.py, chosen at boot by
lib/rbboot.py, downloaded by rbnode/ota/http.py from CPython's own http.server.

Every bad bundle is refused with a message that names the problem, and leaves no finished
slot (no MANIFEST): a bad signature, a changed byte, another key, a download cut at any of
many offsets, a downgrade, another .mpy format, paths outside the slot, duplicates, data
after the signature. rbboot runs a slot only while it is whole and newer than the image's
app, counts a trial's boots, and says why it did not run one.
"""
import base64
import hashlib
import http.server
import json
import os
import subprocess
import threading

import pytest

from mpscript import run_script
from tools import ota

INSTALL = r"""
import asyncio, binascii, json, os, sys
import rbboot
from rbnode.ota import bundle

class Body:                 # a file read in the uneven pieces a network gives
    def __init__(self, p):
        self.f = open(p, "rb")
        self.sizes = [1, 7, 300, 1024, 13]
        self.i = 0
    async def read(self, n):
        self.i += 1
        return self.f.read(min(n, self.sizes[self.i % len(self.sizes)]))
    async def readline(self, limit=512):
        out = b""
        while len(out) <= limit:
            c = self.f.read(1)
            out += c
            if not c or c == b"\n":
                return out
        raise ValueError("line too long")

a = json.load(open(sys.argv[1]))
key = binascii.a2b_base64(a["key"])
for case in a["cases"]:
    try:
        head = asyncio.run(bundle.install(Body(case["file"]), case.get("slot", "b"), key,
                                          case.get("running"), case.get("expect")))
        out = "OK " + head["version"]
    except bundle.BundleError as e:
        out = "ERR " + str(e)
    try:
        os.stat("ota/%s/MANIFEST" % case.get("slot", "b"))
        out += " | MANIFEST"
    except OSError:
        pass
    print(out)
"""

SELECT = r"""
import sys, json
import rbboot
print("SLOT", rbboot.select())
from rbnode.version import VERSION
print("VERSION", VERSION)
print("STATE", json.dumps(rbboot.state()))
"""


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A signing key, its public key, the app's files compiled, a good bundle (0.2.0)."""
    d = tmp_path_factory.mktemp("ota")
    key = ota.keygen(str(d / "key.pem"), 2048)
    pub = ota.pubkey_config(key)["key"]
    exe = ota.mpy_cross()
    files = ota.compile_app("0.2.0", exe, str(d))
    mpy = ota.mpy_format(exe)
    good = d / "good.rbota"
    good.write_bytes(ota.build(files, "0.2.0", mpy, key))
    return {"dir": d, "key": key, "pub": pub, "files": files, "mpy": mpy, "good": good,
            "exe": exe}


def _install(tmp_path, kit, cases, pub=None, env=None):
    """Each case {"file", "slot", "running", "expect"} installed in a fresh tmp_path/fs (on
    the host board env gives: test_ota_firmware's has OTA partitions)."""
    fs = tmp_path / "fs"
    fs.mkdir(exist_ok=True)
    (tmp_path / "cases.json").write_text(json.dumps({"key": pub or kit["pub"], "cases": cases}))
    p = run_script(tmp_path, "install.py", INSTALL, [tmp_path / "cases.json"], cwd=str(fs),
                   env=env)
    lines = [x for x in p.stdout.splitlines() if x.startswith(("OK", "ERR"))]
    assert len(lines) == len(cases), p.stdout
    return lines


def _bundle(kit, path, files=None, version="0.2.0", mpy=None, key=None):
    path.write_bytes(ota.build(files or kit["files"], version, mpy or kit["mpy"],
                               key or kit["key"]))
    return str(path)


def test_a_good_bundle_installs_and_runs(tmp_path, kit):
    (line,) = _install(tmp_path, kit, [{"file": str(kit["good"]), "running": "0.1.0",
                                        "expect": "0.2.0"}])
    assert line == "OK 0.2.0 | MANIFEST", line
    fs = tmp_path / "fs"
    # the slot holds the files, byte for byte the compiled ones
    for path, data in kit["files"]:
        assert (fs / "ota" / "b" / path).read_bytes() == data, path
    # switched to, it runs: the slot's version, rbboot's trial counting the boot
    p = run_script(tmp_path, "switch.py", "import rbboot\nrbboot.switch('b', '0.2.0', 3)\n",
                   cwd=str(fs))
    assert p.returncode == 0, p.stdout
    out = run_script(tmp_path, "select.py", SELECT, cwd=str(fs)).stdout
    assert "SLOT b" in out and "VERSION 0.2.0" in out, out
    st = json.loads(out.split("STATE ")[1])
    assert st["trial"]["boots"] == 1 and st["prev"] is None, st


def test_every_bad_bundle_is_refused_by_name(tmp_path, kit):
    d = tmp_path
    good = kit["good"].read_bytes()
    sig_at = good.rindex(b"S ")      # base64 has no space: the last line
    # a changed byte in the signature; in a file's data (its hash); a re-signed change
    # (another base64 letter, whatever the key made the signature: a flipped bit can leave
    # the alphabet, '+' ^ 1 is '*', and that is refused as "not base64" instead)
    swap = b"B" if good[sig_at + 10:sig_at + 11] == b"A" else b"A"
    bad_sig = good[:sig_at + 10] + swap + good[sig_at + 11:]
    data_at = good.index(b"\n", good.index(b"\nF ") + 1) + 40
    bad_data = good[:data_at] + bytes([good[data_at] ^ 0x20]) + good[data_at + 1:]
    (d / "sig.rbota").write_bytes(bad_sig)
    (d / "data.rbota").write_bytes(bad_data)
    (d / "after.rbota").write_bytes(good + b"x")
    other = ota.keygen(str(d / "other.pem"), 2048)
    files = kit["files"]
    dup = sorted(files + [files[0]])
    cases = [
        ("sig.rbota", "the signature does not verify"),
        ("data.rbota", "its SHA-256 is not the one in its line"),
        (_bundle(kit, d / "otherkey.rbota", key=other), "signed with key"),
        (_bundle(kit, d / "mpy.rbota", mpy="6.1"), ".mpy format is 6.1"),
        (_bundle(kit, d / "down.rbota", version="0.1.0"), "not newer than the running 0.1.0"),
        (_bundle(kit, d / "ask.rbota", version="0.3.0"), "the command asked for 0.2.0"),
        (_bundle(kit, d / "dup.rbota", files=dup), "out of order"),
        (_bundle(kit, d / "less.rbota", files=[f for f in files if f[0] != "rbnode/app.mpy"]),
         "lacks one of"),
        ("after.rbota", "data after the signature"),
    ]
    for evil in ("../evil.mpy", "rbnode/../../evil.mpy", "boot.py", "rbnode/x.py",
                 "RBNODE/x.mpy", "/rbnode/x.mpy", "rbnode/a b.mpy", "rbnode//x.mpy"):
        p = d / ("path%d.rbota" % len(cases))
        cases.append((_bundle(kit, p, files=sorted(files + [(evil, b"x")])),
                      "not a path an update may write"))
    lines = _install(tmp_path, kit, [{"file": str(d / f) if "/" not in f else f,
                                      "running": "0.1.0",
                                      "expect": "0.1.0" if "down" in f else "0.2.0"}
                                     for f, _ in cases])
    for (f, want), line in zip(cases, lines):
        assert line.startswith("ERR ") and want in line, (f, line)
        assert "MANIFEST" not in line, (f, line)       # never a finished slot
    fs = tmp_path / "fs"
    assert not (tmp_path / "evil.mpy").exists() and not (fs / "evil.mpy").exists()
    assert not (fs / "boot.py").exists() and not (fs / "ota" / "evil.mpy").exists()


def test_a_download_cut_anywhere_leaves_no_finished_slot(tmp_path, kit):
    good = kit["good"].read_bytes()
    first_file = good.index(b"\nF ") + 1
    sig_at = good.rindex(b"S ")      # base64 has no space: the last line
    cuts = [0, 3, len(ota.MAGIC), first_file - 5, first_file, first_file + 80, first_file + 900,
            len(good) // 3, len(good) // 2, sig_at - 1, sig_at, sig_at + 2, sig_at + 100,
            len(good) - 1]
    cases = []
    for c in cuts:
        p = tmp_path / ("cut%d.rbota" % c)
        p.write_bytes(good[:c])
        cases.append({"file": str(p), "running": "0.1.0", "expect": "0.2.0"})
    lines = _install(tmp_path, kit, cases)
    for c, line in zip(cuts, lines):
        assert line.startswith("ERR ") and "MANIFEST" not in line, (c, line)
    # and a whole one after all of that installs into the same slot
    (line,) = _install(tmp_path, kit, [{"file": str(kit["good"]), "running": "0.1.0"}])
    assert line == "OK 0.2.0 | MANIFEST", line


def test_fuzzed_bundles_are_refused_never_crash(tmp_path, kit):
    """Random damage to a good bundle (bytes flipped, removed, inserted, 0xFF runs, cuts)
    anywhere in it: every one is refused with a BundleError (nothing else escapes) and leaves
    no finished slot."""
    import random
    rng = random.Random(22)
    good = kit["good"].read_bytes()
    head_end = good.index(b"\nF ") + 1
    cases = []
    for i in range(48):
        b = bytearray(good)
        kind = i % 6
        # half of them in the header and file lines, where the parser works hardest
        at = rng.randrange(head_end + 400) if i % 2 else rng.randrange(len(b))
        if kind == 0:
            b[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del b[at:at + rng.randrange(1, 40)]
        elif kind == 2:
            b[at:at] = os.urandom(rng.randrange(1, 40))
        elif kind == 3:
            b[at:at + 16] = b"\xff" * 16
        elif kind == 4:
            b = b[:at]
        else:
            b[at:at] = b"\n"
        if bytes(b) == good:
            continue
        p = tmp_path / ("fuzz%d.rbota" % i)
        p.write_bytes(bytes(b))
        cases.append({"file": str(p), "running": "0.1.0", "expect": "0.2.0"})
    lines = _install(tmp_path, kit, cases)
    for c, line in zip(cases, lines):
        assert line.startswith("ERR ") and "MANIFEST" not in line, (c, line)


def test_rbboot_runs_a_slot_only_while_it_is_whole(tmp_path, kit):
    fs = tmp_path / "fs"
    _install(tmp_path, kit, [{"file": str(kit["good"]), "running": "0.1.0"}])
    run_script(tmp_path, "switch.py", "import rbboot\nrbboot.switch('b', '0.2.0', 2)\n",
               cwd=str(fs))

    def select():
        out = run_script(tmp_path, "select.py", SELECT, cwd=str(fs)).stdout
        return out, json.loads(out.split("STATE ")[1])

    out, st = select()
    assert "SLOT b" in out and st["trial"]["boots"] == 1, out
    # a flipped byte on the flash: the cold boot's hash check refuses the slot
    p = fs / "ota" / "b" / "rbnode" / "ledger.mpy"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x04
    p.write_bytes(bytes(data))
    out, st = select()
    assert "SLOT None" in out and "VERSION 0.1.0" in out, out
    assert st["last"]["result"] == "rolled_back" and "ledger.mpy: its SHA-256" in \
        st["last"]["reason"], st
    assert st["active"] is None and st["trial"] is None, st


def test_rbboot_trial_boots_and_damaged_state(tmp_path, kit):
    fs = tmp_path / "fs"
    _install(tmp_path, kit, [{"file": str(kit["good"]), "running": "0.1.0"}])
    run_script(tmp_path, "switch.py", "import rbboot\nrbboot.switch('b', '0.2.0', 2)\n",
               cwd=str(fs))
    outs = [run_script(tmp_path, "select.py", SELECT, cwd=str(fs)).stdout for _ in range(3)]
    assert ["SLOT b" in o for o in outs] == [True, True, False], outs
    st = json.loads(outs[2].split("STATE ")[1])
    assert st["last"]["reason"] == "version 0.2.0 did not report healthy in 2 boots", st
    # a confirmed slot runs on; a damaged state file: the image's app, and it says so
    run_script(tmp_path, "switch.py", "import rbboot\nrbboot.switch('b', '0.2.0', 2)\n"
               "rbboot.confirm()\n", cwd=str(fs))
    for _ in range(4):
        assert "SLOT b" in run_script(tmp_path, "select.py", SELECT, cwd=str(fs)).stdout
    state = fs / "ota" / "state"
    text = state.read_bytes()
    for bad in (text.replace(b'"b"', b'"c"'), text[:10], b"\xff" * 40, b""):
        state.write_bytes(bad)
        out = run_script(tmp_path, "select.py", SELECT, cwd=str(fs)).stdout
        assert "SLOT None" in out and "VERSION 0.1.0" in out, out
        if bad:
            assert "ota/state is damaged" in out, out


def test_rbboot_prefers_a_newer_image(tmp_path, kit):
    """A board flashed by cable with an app newer than the slot's runs the image's."""
    fs = tmp_path / "fs"
    _install(tmp_path, kit, [{"file": _bundle(kit, tmp_path / "v.rbota", version="0.0.9"),
                              "running": "0.0.1"}])
    run_script(tmp_path, "switch.py", "import rbboot\nrbboot.switch('b', '0.0.9', 2)\n",
               cwd=str(fs))
    out = run_script(tmp_path, "select.py", SELECT, cwd=str(fs)).stdout
    assert "SLOT None" in out and "VERSION 0.1.0" in out, out
    assert "not newer than the image's app 0.1.0" in out, out


VERIFY = r"""
import binascii, hashlib, sys
from rbnode.ota.rsa import verify
mod = binascii.a2b_base64(open(sys.argv[1]).read())
sig = open(sys.argv[2], "rb").read()
msg = open(sys.argv[3], "rb").read()
d = hashlib.sha256(msg).digest()
print("GOOD", verify(mod, sig, d))
print("MSG", verify(mod, sig, hashlib.sha256(msg + b"!").digest()))
for i in (0, 1, len(sig) // 2, len(sig) - 1):
    s = bytearray(sig)
    s[i] ^= 1
    print("SIG%d" % i, verify(mod, bytes(s), d))
print("SHORT", verify(mod, sig[1:], d))
"""


def test_rsa_verify_against_openssl(tmp_path, kit):
    """A signature openssl makes (another implementation than the one tools/ota.py uses)
    verifies on the unix port; any changed bit does not."""
    pem = kit["dir"] / "key.pem"
    msg = tmp_path / "msg"
    msg.write_bytes(os.urandom(5000))
    sig = tmp_path / "sig"
    subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(pem), "-out", str(sig),
                    str(msg)], check=True)
    (tmp_path / "pub").write_text(kit["pub"])
    out = run_script(tmp_path, "verify.py", VERIFY, [tmp_path / "pub", sig, msg]).stdout
    assert "GOOD True" in out and "MSG False" in out and "SHORT False" in out, out
    assert out.count(" False") == 6, out


HTTP_GET = r"""
import asyncio, hashlib, binascii, sys
from rbnode.ota.http import get, HttpError
CA = None
if sys.argv[1].startswith("ca="):
    from rbnode.net.link import ca_der
    CA = ca_der(open(sys.argv.pop(1)[3:], "rb").read())
async def main(url):
    try:
        b = await get(url, CA)
    except HttpError as e:
        return "ERR " + str(e)
    h = hashlib.sha256()
    n = 0
    try:
        while True:
            d = await b.read(700)
            if not d:
                break
            h.update(d)
            n += len(d)
    except HttpError as e:
        return "ERR " + str(e)
    finally:
        b.close()
    return "OK %d %s %s" % (n, binascii.hexlify(h.digest()).decode(), b.length)
for u in sys.argv[1:]:
    print(asyncio.run(main(u)))
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b""

    def log_message(self, *a):
        pass

    def do_GET(self):
        b = self.body
        if self.path == "/good":
            self.send_response(200)
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(b), 777):
                part = b[i:i + 777]
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":          # no length: the body ends at the close
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b)
            self.close_connection = True
        elif self.path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b[:len(b) // 2])
            self.close_connection = True
        elif self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/good")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/loop":
            self.send_response(301)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404)


def test_http_get_against_a_real_server(tmp_path):
    body = os.urandom(20000)
    _Handler.body = body
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        urls = [base + p for p in ("/good", "/chunked", "/close", "/cut", "/redirect",
                                   "/loop", "/missing")]
        urls.append("http://127.0.0.1:1/x")
        out = run_script(tmp_path, "get.py", HTTP_GET, urls).stdout.splitlines()
    finally:
        srv.shutdown()
    digest = hashlib.sha256(body).hexdigest()
    assert out[0] == "OK %d %s %d" % (len(body), digest, len(body)), out
    assert out[1] == "OK %d %s None" % (len(body), digest), out
    assert out[2] == "OK %d %s None" % (len(body), digest), out
    assert out[3].startswith("ERR the connection closed before the end of the body (10000 "
                             "bytes received of 20000)"), out
    assert out[4] == out[0], out
    assert out[5] == "ERR more than 5 redirects", out
    assert out[6].startswith("ERR HTTP 404"), out
    assert out[7].startswith("ERR cannot connect to 127.0.0.1:1"), out


def test_https_with_and_without_the_servers_ca(tmp_path):
    """HTTPS against CPython's ssl server: the certificate checked against ota.ca_file's CA
    (a server with another CA's certificate refused), or encrypted only without one."""
    import ssl
    from tools.host.broker import make_test_ca
    good = make_test_ca(str(tmp_path))
    (tmp_path / "other").mkdir()
    other = make_test_ca(str(tmp_path / "other"))
    body = os.urandom(30000)
    _Handler.body = body
    servers, urls = [], []
    for tls in (good, other):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls["cert"], tls["key"])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        urls.append("https://127.0.0.1:%d/good" % srv.server_address[1])
    try:
        checked = run_script(tmp_path, "get.py", HTTP_GET, ["ca=" + good["ca"]] + urls).stdout
        plain = run_script(tmp_path, "get.py", HTTP_GET, urls[:1]).stdout
    finally:
        for srv in servers:
            srv.shutdown()
    digest = hashlib.sha256(body).hexdigest()
    lines = checked.splitlines()
    assert lines[0] == "OK %d %s %d" % (len(body), digest, len(body)), checked
    assert lines[1].startswith("ERR ") and "127.0.0.1" in lines[1], checked
    assert plain.strip() == lines[0], plain


SILENT = r"""
import asyncio, sys, time
from rbnode.ota import http
http.TIMEOUT_S = 2
ticks = [0]
async def ticker():
    while True:
        await asyncio.sleep_ms(100)
        ticks[0] += 1
async def main():
    asyncio.create_task(ticker())
    t = time.ticks_ms()
    try:
        await http.get(sys.argv[1])
        print("GOT an answer")
    except http.HttpError as e:
        print("ERR", e)
    print("MS", time.ticks_diff(time.ticks_ms(), t), "TICKS", ticks[0])
asyncio.run(main())
"""


def test_a_silent_server_never_blocks_the_event_loop(tmp_path):
    """A server that accepts the connection and says nothing, over HTTP and over HTTPS (the
    TLS handshake waits for it): the download gives up after its timeout, and the node's
    other tasks ran all along."""
    import socket
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    port = lst.getsockname()[1]
    try:
        outs = [run_script(tmp_path, "silent.py", SILENT, ["%s://127.0.0.1:%d/x" % (scheme, port)])
                .stdout for scheme in ("http", "https")]
    finally:
        lst.close()
    for out in outs:
        assert "ERR" in out and "no answer in 2 s" in out, out
        ms = int(out.split("MS ")[1].split()[0])
        ticks = int(out.split("TICKS ")[1].split()[0])
        # the loop was free: a blocked one ticks once at most (and never times out)
        assert ms >= 1900 and ticks >= 5, out


def test_the_tool_refuses_to_overwrite_a_key_and_inspects(tmp_path, kit):
    with pytest.raises(SystemExit, match="not overwriting a signing key"):
        ota.keygen(str(kit["dir"] / "key.pem"), 2048)
    assert oct(os.stat(kit["dir"] / "key.pem").st_mode & 0o777) == "0o600"
    head, files = ota.parse(kit["good"].read_bytes(), kit["pub"])
    assert head["version"] == "0.2.0" and len(files) == head["files"] > 40
    paths = [f[0] for f in files]
    assert paths == sorted(paths) and "rbnode_build.mpy" in paths
    assert not any(p.startswith(("rbboot", "mqtt_as")) for p in paths)
    other = ota.pubkey_config(ota.keygen(str(tmp_path / "o.pem"), 2048))["key"]
    with pytest.raises(SystemExit, match="does not verify"):
        ota.parse(kit["good"].read_bytes(), other)
    assert base64.b64decode(kit["pub"])[0] != 0
