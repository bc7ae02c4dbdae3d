"""An update bundle (tools/ota.py makes it) read as a stream and installed into a slot.

    head = await install(body, "b", key, running="0.1.0", expect="0.2.0", progress=fn)

body: anything with async readline(limit) / read(n) (http.Body). Once the header is
accepted, the slot is released (rbboot.release: no state refers to it) and emptied (its
MANIFEST first, so an interrupted wipe is an unfinished slot); every file is written as it
arrives, with its SHA-256 and the whole bundle's computed on the way; the signature, the
bundle's last line, is checked against the key before the slot's MANIFEST is written (renamed
from MANIFEST.part). Until then rbboot never runs the slot. A refused bundle's files are
removed; a power cut leaves an unfinished slot (no MANIFEST), which rbboot never runs and the
next install empties. The running version stays as it was either way.

A bundle of "kind": "firmware" (ESP32) goes into the other app partition instead
(firmware.py); head["partition"] names it.

What is refused, before anything is written where possible (BundleError names it): not a
bundle; another app; a version that is not the one asked for, or not newer than the running
one (no downgrade); another .mpy format than this firmware's; another signing key; more
files or bytes than MAX_FILES / MAX_BYTES or the free flash; a path outside rbnode/, rbamp/
and rbnode_build.mpy, or out of order (each path sorts after the one before: no duplicates);
a file whose size or hash is not its line's; anything after the signature.
"""
import binascii
import hashlib
import os

import rbboot

from .rsa import verify

MAGIC = b"RBOTA 1\n"
MAX_FILES = 256
MAX_FILE = 128 * 1024
MAX_BYTES = 1024 * 1024
MARGIN = 16 * 1024               # flash left free after the install
CHUNK = 1024
REQUIRED = ("rbnode/__init__.mpy", "rbnode/app.mpy", "rbnode_build.mpy")
PATH_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_/."


class BundleError(Exception):
    pass


def key_id(modulus):
    return binascii.hexlify(hashlib.sha256(modulus).digest()).decode()[:16]


def check_path(path, last):
    if not (path.startswith("rbnode/") or path.startswith("rbamp/") or
            path == "rbnode_build.mpy") or not path.endswith(".mpy") or len(path) > 96 or \
            ".." in path or "//" in path or path.count("/") > 3 or \
            any(c not in PATH_CHARS for c in path):
        raise BundleError("file %r: not a path an update may write" % path[:100])
    if last is not None and path <= last:
        raise BundleError("file %s: out of order after %s (a bundle lists each file once, "
                          "sorted)" % (path, last))


def slot_dir(slot):
    return "%s/%s" % (rbboot.DIR, slot)


def _isdir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return None


def remove_tree(p):
    """p and everything under it (p's MANIFEST first: from then on the slot is unfinished)."""
    kind = _isdir(p)
    if kind is None:
        return
    if not kind:
        os.remove(p)
        return
    for name in ("MANIFEST",):
        try:
            os.remove(p + "/" + name)
        except OSError:
            pass
    for name in os.listdir(p):
        remove_tree(p + "/" + name)
    os.rmdir(p)


def _makedirs(p):
    here = ""
    for part in p.split("/"):
        here = here + "/" + part if here else part
        if _isdir(here) is None:
            os.mkdir(here)


def free_bytes():
    try:
        s = os.statvfs(".")
        return s[0] * s[4]
    except (OSError, AttributeError):
        return None


def _head(line, key, running, expect):
    import json
    try:
        head = json.loads(line)
    except ValueError:
        raise BundleError("the bundle's header is not JSON")
    if not isinstance(head, dict) or head.get("app") != "rbnode":
        raise BundleError("not an rbnode bundle (app %r)" % (
            head.get("app") if isinstance(head, dict) else None,))
    v = head.get("version")
    mine = rbboot.version_key(v)
    if mine is None:
        raise BundleError("the bundle's version %r is not of the form 1.2.3" % (v,))
    if expect is not None and expect != v and expect != v.split("+")[0]:
        raise BundleError("the bundle is version %s, the command asked for %s" % (v, expect))
    run = rbboot.version_key(running)
    if run is not None and mine <= run:
        raise BundleError("version %s is not newer than the running %s (no downgrade: "
                          "roll back with ota_rollback)" % (v, running))
    kind = head.get("kind", "app")
    if kind not in ("app", "firmware"):
        raise BundleError("a bundle of kind %r (this node takes app and firmware)" % (kind,))
    if kind == "app" and head.get("mpy") != rbboot.mpy_version():
        raise BundleError("the bundle's .mpy format is %s, this firmware loads %s (build the "
                          "bundle with this firmware's mpy-cross)" % (head.get("mpy"),
                                                                     rbboot.mpy_version()))
    kid = key_id(key)
    if head.get("key") != kid:
        raise BundleError("the bundle is signed with key %s, this node has key %s (ota.key)"
                          % (str(head.get("key"))[:16], kid))
    n, total = head.get("files"), head.get("bytes")
    most = 16 * 1024 * 1024 if kind == "firmware" else MAX_BYTES    # firmware: its partition
    if not isinstance(n, int) or not 1 <= n <= MAX_FILES or not isinstance(total, int) or \
            not 0 < total <= most:
        raise BundleError("the bundle has %r files, %r bytes (at most %d files, %d bytes)"
                          % (n, total, MAX_FILES, most))
    return head


async def install(body, slot, key, running=None, expect=None, progress=None):
    """The bundle from body into slot; its header (dict) once the slot is complete."""
    line = await body.readline(16)
    if line != MAGIC:
        raise BundleError("not an rbnode update bundle (it starts %r)" % (line[:16],))
    total = hashlib.sha256(line)
    line = await body.readline(1024)
    total.update(line)
    head = _head(line, key, running, expect)
    if head.get("kind") == "firmware":              # ESP32: the other app partition
        from .firmware import install as install_firmware
        head["partition"] = await install_firmware(body, key, head, total, progress)
        return head
    d = slot_dir(slot)
    _makedirs(rbboot.DIR)
    rbboot.release(slot)            # no state refers to the slot from here on
    remove_tree(d)
    try:
        await _files(body, d, key, head, line, total, progress)
    except BaseException:
        remove_tree(d)               # nothing of a refused bundle stays on the flash
        raise
    return head


async def _files(body, d, key, head, line, total, progress):
    """The files and the signature into d (emptied); the slot's MANIFEST last."""
    free = free_bytes()
    if free is not None and head["bytes"] + MARGIN > free:
        raise BundleError("%d bytes to install, %d free on the flash" % (head["bytes"], free))
    os.mkdir(d)
    done = 0
    last = None
    seen = 0
    with open(d + "/MANIFEST.part", "w") as man:
        man.write(line.decode())
        for _ in range(head["files"]):
            size, digest, path = await file_line(body, total, MAX_FILE)
            check_path(path, last)
            last = path
            seen += path in REQUIRED
            if done + size > head["bytes"]:
                raise BundleError("the files are larger than the header's %d bytes"
                                  % head["bytes"])
            p = d + "/" + path
            _makedirs(p.rsplit("/", 1)[0])
            h = hashlib.sha256()
            left = size
            with open(p, "wb") as f:
                while left:
                    data = await body.read(min(CHUNK, left))
                    if not data:
                        raise BundleError("the download ended inside %s (%d of %d bytes of "
                                          "the bundle's files)" % (path, done, head["bytes"]))
                    n = len(data)
                    f.write(data)
                    h.update(data)
                    total.update(data)
                    left -= n
                    done += n
                    if progress is not None:
                        progress(done, head["bytes"])
            if binascii.hexlify(h.digest()).decode() != digest:
                raise BundleError("%s: its SHA-256 is not the one in its line" % path)
            man.write("F %d %s %s\n" % (size, digest, path))
    if seen != len(REQUIRED):
        raise BundleError("the bundle lacks one of %s" % ", ".join(REQUIRED))
    if done != head["bytes"]:
        raise BundleError("the files are %d bytes, the header says %d" % (done, head["bytes"]))
    await signature(body, key, total, "the files")
    os.rename(d + "/MANIFEST.part", d + "/MANIFEST")


async def file_line(body, total, most):
    """The next "F <size> <sha256 hex> <path>" line (into total): (size, digest, path)."""
    fl = await body.readline(160)
    total.update(fl)
    try:
        kind, size, digest, path = fl.decode().rstrip("\n").split(" ", 3)
        size = int(size)
    except (ValueError, UnicodeError):
        raise BundleError("a bad file line %r" % (fl[:60],))
    if kind != "F" or not 0 <= size <= most or len(digest) != 64:
        raise BundleError("a bad file line %r" % (fl[:60],))
    return size, digest, path


async def signature(body, key, total, after):
    """The bundle's last line: the signature of everything before it (total, SHA-256),
    checked against key; nothing may follow it."""
    sig = await body.readline(1024)
    if not sig.startswith(b"S ") or not sig.endswith(b"\n"):
        raise BundleError("no signature after %s (the download was cut short?)" % after)
    try:
        s = binascii.a2b_base64(sig[2:-1])
    except ValueError:
        raise BundleError("the signature is not base64")
    if not verify(key, s, total.digest()):
        raise BundleError("the signature does not verify with this node's key: the bundle "
                          "was changed, or signed with another key")
    if await body.read(1):
        raise BundleError("data after the signature")
