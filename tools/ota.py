"""Over-the-air updates (issue 22), the host's side: the signing key and the bundle.

    python tools/ota.py keygen [--key keys/ota-key.pem] [--bits 3072]   # make ota-key
    python tools/ota.py pubkey [--key ...]       # the "ota" section for config.json
    python tools/ota.py bundle [--key ...] [--version 0.2.0] [--out FILE]   # make ota-bundle
    python tools/ota.py firmware [--image APP.bin] [--version V] [--out FILE]   # make ota-firmware
    python tools/ota.py inspect FILE [--pub BASE64]    # what a bundle holds; checks it

The key is RSA (PKCS#1 v1.5 signatures over SHA-256, public exponent 65537): a node checks a
signature with one modular power of small exponent, about a millisecond on the host and no
more heap than the key's size (rbnode/ota/rsa.py). The private key never leaves this
machine: keygen writes it readable by its owner only, and refuses to overwrite one; keys/
is in .gitignore. Lose it and the nodes accept no more updates until their config.json has a
new public key (by cable).

The bundle (rbnode/ota/bundle.py reads it, as a stream, never whole):
    RBOTA 1\\n
    {"app": "rbnode", "version": "0.2.0+g1a2b3c4", "mpy": "6.3", "files": N,
     "bytes": <sum of the sizes>, "key": <key id: 16 hex digits of SHA-256(modulus)>}\\n
    F <size> <sha256 hex> <path>\\n<size bytes>          N times: the app's .mpy files
    S <base64 signature of the SHA-256 of every byte before this line>\\n
A firmware bundle (ESP32 OTA builds: the whole MicroPython image, our app frozen in it) has
"kind": "firmware" and "chip" in its header, no "mpy", and one file, firmware.bin: the app
image (build/ESP32_GENERIC-OTA/app-<version>.bin), never the whole flash image.
The files are what firmware/manifest.py freezes of rbamp and rbnode, compiled by mpy-cross,
plus rbnode_build.mpy with the bundle's version; never rbboot (the image's, it chooses what
runs) nor mqtt_as (a dependency, the image's).
"""
import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import deps, manifest  # noqa: E402

ROOT = deps.ROOT
KEY = os.path.join(ROOT, "keys", "ota-key.pem")
MAGIC = b"RBOTA 1\n"
VERSION_RE = re.compile(r"^\d{1,6}(\.\d{1,6}){0,3}(\+[0-9A-Za-z.]{1,32})?$")
APP_TOPS = ("rbamp/", "rbnode/")


class OtaError(SystemExit):
    pass


def _crypto():
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError:
        raise OtaError("the `cryptography` package is missing: run `make setup`")
    return hashes, serialization, padding, rsa


def keygen(path, bits):
    hashes, serialization, padding, rsa = _crypto()
    if os.path.exists(path):
        raise OtaError("%s exists: not overwriting a signing key (nodes that have its public "
                       "key would refuse bundles signed by a new one)" % path)
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    print("[ota] signing key written to %s (readable by you only: keep it, back it up, never "
          "share it)" % path)
    return key


def load_key(path):
    hashes, serialization, padding, rsa = _crypto()
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except FileNotFoundError:
        raise OtaError("no signing key at %s: make one with `make ota-key` (or pass KEY=)"
                       % path)
    except ValueError as e:
        raise OtaError("%s is not a PEM private key (%s)" % (path, e))
    if not isinstance(key, rsa.RSAPrivateKey) or key.public_key().public_numbers().e != 65537:
        raise OtaError("%s: an RSA key with public exponent 65537 is needed" % path)
    return key


def modulus_bytes(key):
    n = key.public_key().public_numbers().n
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def key_id(mod):
    return hashlib.sha256(mod).hexdigest()[:16]


def pubkey_config(key):
    mod = modulus_bytes(key)
    return {"enabled": True, "key": base64.b64encode(mod).decode()}


def mpy_cross():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return exe if os.path.exists(exe) else "mpy-cross"


def mpy_format(exe):
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise OtaError("%s --version says %r: not an mpy-cross" % (exe, out.strip()))
    return "%s.%s" % m.groups()


def app_files():
    """[(target .py path, source)] of the app as firmware/manifest.py freezes it."""
    try:
        deps.prepare()                 # the manifest names build/deps: fill it first
    except deps.DepsError as e:
        raise OtaError(str(e))
    m = manifest.read()
    if m.errors:
        raise OtaError("firmware/manifest.py: " + "; ".join(m.errors))
    return [(t, s) for t, s in m.files if t.startswith(APP_TOPS)]


def compile_app(version, exe, work):
    """[(path in the slot, bytes)]: the app's .mpy and rbnode_build.mpy."""
    out = []
    build = os.path.join(work, "rbnode_build.py")
    with open(build, "w") as f:
        f.write("# generated by tools/ota.py for an over-the-air bundle\nVERSION = %r\n"
                % version)
    for target, src in sorted(app_files() + [("rbnode_build.py", build)]):
        dest = os.path.join(work, "mpy", target[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        p = subprocess.run([exe, "-o", dest, "-s", target, src], capture_output=True, text=True)
        if p.returncode:
            raise OtaError("mpy-cross failed on %s:\n%s" % (target, p.stderr))
        with open(dest, "rb") as f:
            out.append((target[:-3] + ".mpy", f.read()))
    return sorted(out)        # the node takes each path once, in order


def build(files, version, mpy, key, **extra):
    """The bundle's bytes. extra: more header fields (a firmware's kind and chip)."""
    hashes, serialization, padding, rsa = _crypto()
    head = {"app": "rbnode", "version": version, "mpy": mpy, "files": len(files),
            "bytes": sum(len(d) for _, d in files), "key": key_id(modulus_bytes(key))}
    if mpy is None:
        del head["mpy"]
    head.update(extra)
    parts = [MAGIC, json.dumps(head, separators=(",", ":")).encode() + b"\n"]
    for path, data in files:
        parts.append(b"F %d %s %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode(),
                                        path.encode()))
        parts.append(data)
    body = b"".join(parts)
    sig = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return body + b"S " + base64.b64encode(sig) + b"\n"


def bundle(key_path, version, out, exe):
    if not VERSION_RE.match(version):
        raise OtaError("version %r: numbers with dots, optionally +local (\"0.2.0\", "
                       "\"0.2.0+g1a2b3c4\")" % version)
    key = load_key(key_path)
    mpy = mpy_format(exe)
    with tempfile.TemporaryDirectory() as work:
        files = compile_app(version, exe, work)
    data = build(files, version, mpy, key)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".part", "wb") as f:
        f.write(data)
    os.replace(out + ".part", out)
    print("[ota] %s: version %s, %d files, %d bytes (mpy %s, key %s)" % (
        os.path.relpath(out), version, len(files), len(data), mpy,
        key_id(modulus_bytes(key))))
    print("[ota] publish it on an HTTP(S) server the nodes reach, then send\n"
          "      <base>/cmd/ota {\"url\": \"http://<server>/%s\", \"version\": \"%s\"}"
          % (os.path.basename(out), version.split("+")[0]))
    return out


def firmware_bundle(image, version, key):
    """A firmware bundle (ESP32 OTA builds) of the app image's bytes; OtaError naming what
    is wrong with it."""
    from tools import images
    if len(image) < 0x8000 or image[0] != images.ESP_MAGIC:
        raise OtaError("not an ESP32 app image (it must start with 0xE9 and be a whole "
                       "MicroPython build): give the app image of an OTA build, "
                       "build/ESP32_GENERIC-OTA/app-<version>.bin")
    if image[0x7000:0x7002] == b"\xaa\x50" or image[0x8000:0x8002] == b"\xaa\x50":
        raise OtaError("this is the whole flash image (bootloader, partition table, app): "
                       "an update takes the app image alone, app-<version>.bin beside it")
    cid = int.from_bytes(image[12:14], "little")
    chip = next((n for n, v in images.CHIP_IDS.items() if v == cid), None)
    if chip is None:
        raise OtaError("an ESP image for chip id %d, not a chip this firmware is built for"
                       % cid)
    return build([("firmware.bin", image)], version, None, key, kind="firmware", chip=chip)


def firmware(key_path, image_path, version, out):
    if not VERSION_RE.match(version):
        raise OtaError("version %r: numbers with dots, optionally +local" % version)
    key = load_key(key_path)
    try:
        with open(image_path, "rb") as f:
            image = f.read()
    except OSError as e:
        raise OtaError("%s: %s (build it with make firmware BOARD=ESP32_GENERIC VARIANT=OTA)"
                       % (image_path, e.strerror))
    data = firmware_bundle(image, version, key)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".part", "wb") as f:
        f.write(data)
    os.replace(out + ".part", out)
    print("[ota] %s: firmware %s, %d bytes (key %s)" % (os.path.relpath(out), version,
                                                         len(image), key_id(modulus_bytes(key))))
    print("[ota] publish it, then send <base>/cmd/ota {\"url\": \"http://<server>/%s\", "
          "\"version\": \"%s\"}" % (os.path.basename(out), version.split("+")[0]))
    return out


def parse(data, pub=None):
    """A bundle's (header, [(path, size, sha256)]); raises OtaError naming the problem.
    pub: the base64 modulus to check the signature with."""
    if not data.startswith(MAGIC):
        raise OtaError("not an rbnode bundle (no RBOTA 1 line)")
    pos = len(MAGIC)
    end = data.index(b"\n", pos)
    head = json.loads(data[pos:end])
    pos = end + 1
    files = []
    for _ in range(head["files"]):
        end = data.index(b"\n", pos)
        kind, size, digest, path = data[pos:end].decode().split(" ", 3)
        size = int(size)
        body = data[end + 1:end + 1 + size]
        if kind != "F" or len(body) != size or hashlib.sha256(body).hexdigest() != digest:
            raise OtaError("%s: size or SHA-256 does not match its line" % path)
        files.append((path, size, digest))
        pos = end + 1 + size
    if not data.startswith(b"S ", pos):
        raise OtaError("no signature line after the files")
    if pub is not None:
        hashes, serialization, padding, rsa = _crypto()
        mod = base64.b64decode(pub)
        k = rsa.RSAPublicNumbers(65537, int.from_bytes(mod, "big")).public_key()
        try:
            k.verify(base64.b64decode(data[pos + 2:].strip()), data[:pos], padding.PKCS1v15(),
                     hashes.SHA256())
        except Exception:  # noqa: BLE001 - cryptography's InvalidSignature
            raise OtaError("the signature does not verify with that key")
    return head, files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("--key", default=os.environ.get("KEY") or KEY)
    k.add_argument("--bits", type=int, default=3072, choices=(2048, 3072, 4096))
    p = sub.add_parser("pubkey")
    p.add_argument("--key", default=os.environ.get("KEY") or KEY)
    b = sub.add_parser("bundle")
    b.add_argument("--key", default=os.environ.get("KEY") or KEY)
    b.add_argument("--version", default=os.environ.get("VERSION") or None)
    b.add_argument("--out", default=os.environ.get("OUT") or None)
    b.add_argument("--mpy-cross", default=os.environ.get("MPY_CROSS") or mpy_cross())
    fw = sub.add_parser("firmware")
    fw.add_argument("--key", default=os.environ.get("KEY") or KEY)
    fw.add_argument("--image", default=os.environ.get("IMAGE") or None)
    fw.add_argument("--version", default=os.environ.get("VERSION") or None)
    fw.add_argument("--out", default=os.environ.get("OUT") or None)
    i = sub.add_parser("inspect")
    i.add_argument("file")
    i.add_argument("--pub")
    a = ap.parse_args(argv)
    if a.cmd == "keygen":
        key = keygen(a.key, a.bits)
        print('[ota] put this in config.json (the public key: not a secret):\n"ota": %s'
              % json.dumps(pubkey_config(key)))
    elif a.cmd == "pubkey":
        print('"ota": %s' % json.dumps(pubkey_config(load_key(a.key))))
    elif a.cmd == "bundle":
        version = a.version or deps.version()
        out = a.out or os.path.join(ROOT, "build", "ota", "rbnode-%s.rbota" % version)
        bundle(a.key, version, out, a.mpy_cross)
    elif a.cmd == "firmware":
        named = re.match(r"^app-(.+)\.bin$", os.path.basename(a.image or ""))
        if named and a.version and a.version != named.group(1):
            raise OtaError("%s is version %s by its name, not %s: the version a node reports "
                           "is the one frozen in the image" % (a.image, named.group(1),
                                                               a.version))
        version = a.version or (named and named.group(1)) or deps.version()
        image = a.image or os.path.join(ROOT, "build", "ESP32_GENERIC-OTA",
                                        "app-%s.bin" % version)
        out = a.out or os.path.join(ROOT, "build", "ota", "firmware-%s.rbota" % version)
        firmware(a.key, image, version, out)
    else:
        with open(a.file, "rb") as f:
            head, files = parse(f.read(), a.pub)
        print(json.dumps(head))
        for path, size, digest in files:
            print("%8d %s %s" % (size, digest[:16], path))
        print("signature: %s" % ("verified" if a.pub else "not checked (no --pub)"))


if __name__ == "__main__":
    main()
