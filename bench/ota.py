"""The update's cost on the node (`make bench SUITE=ota`; MICROPYTHON=<a unix32 build> for the
chips' memory model, where the app is frozen as on a chip): the signature check per key size,
and one whole update of the app (download from a local HTTP server, every file written and
hashed, the signature checked) with the heap it allocates at most above what was in use
before it. Figures: bench/README.md, "Updates over the air".
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from otaserver import OtaServer  # noqa: E402
from tools import ota  # noqa: E402
from tools.host import hostenv  # noqa: E402

SCRIPT = r"""
import asyncio, binascii, gc, hashlib, json, sys, time
from rbnode.ota import rsa
from rbnode.ota.bundle import install
from rbnode.ota.http import get
args = json.load(open(sys.argv[1]))     # (argv: a long argument crashes the unix port)
d = hashlib.sha256(b"x").digest()
for bits, mod, sig in args["keys"]:
    mod, sig = binascii.unhexlify(mod), binascii.unhexlify(sig)
    gc.collect(); m0 = gc.mem_alloc(); t = time.ticks_us()
    ok = rsa.verify(mod, sig, d)
    us = time.ticks_diff(time.ticks_us(), t)
    print("ota_verify_us_rsa%s: %d us (%s, %d bytes allocated)" % (bits, us, ok, gc.mem_alloc() - m0))
key = binascii.unhexlify(args["key"])
def progress(done, total):
    pass
async def main():
    gc.collect()
    base = gc.mem_alloc()
    t = time.ticks_ms()
    body = await get(args["url"])
    head = await install(body, "b", key, "0.1.0", None, progress)
    body.close()
    ms = time.ticks_diff(time.ticks_ms(), t)
    print("ota_update_ms: %d ms (%d files, %d bytes of .mpy)" % (ms, head["files"], head["bytes"]))
    gc.collect()
    print("ota_update_heap_kept_bytes: %d bytes" % (gc.mem_alloc() - base))
    print("BASE %d" % base)
if "--verify-only" not in sys.argv:
    asyncio.run(main())
"""


def smallest(exe, script, args, fs, env, keys, data):
    """The smallest -X heapsize (1 KB steps) at which the whole update runs, and how much of
    it the update needs beyond the script's imports (asyncio, the frozen ota modules)."""
    def ok(kb):
        srv = OtaServer({"/b.rbota": data})
        try:
            with open(args) as f:
                a = json.load(f)
            a["url"] = srv.url("/b.rbota")
            with open(args, "w") as f:
                json.dump(a, f)
            p = subprocess.run([exe, "-X", "heapsize=%dK" % kb, script, args], cwd=fs, env=env,
                               capture_output=True, text=True, timeout=120)
        finally:
            srv.stop()
        return p.returncode == 0 and "ota_update_ms" in p.stdout, p.stdout
    lo, hi = 4, 512
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid)[0]:
            hi = mid
        else:
            lo = mid + 1
    good, out = ok(lo)
    base = int(out.split("BASE ")[1].split()[0]) if good else 0
    return "%d KB (of which %d bytes in use before the update: the imports)" % (lo, base)


def main():
    exe = hostenv.micropython()
    work = tempfile.mkdtemp(prefix="ota-bench-")
    keys = []
    for bits in (2048, 3072, 4096):
        k = ota.keygen(os.path.join(work, "k%d.pem" % bits), bits)
        mod = ota.modulus_bytes(k)
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        sig = k.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
        keys.append((bits, k, mod, sig))
    k3 = keys[1][1]
    data = ota.build(ota.compile_app("9.9.9", ota.mpy_cross(), work), "9.9.9",
                     ota.mpy_format(ota.mpy_cross()), k3)
    srv = OtaServer({"/b.rbota": data})
    fs = os.path.join(work, "fs")
    os.mkdir(fs)
    script = os.path.join(work, "ota_bench.py")
    with open(script, "w") as f:
        f.write(SCRIPT)
    path = hostenv.micropypath(frozen_first=True)
    env = dict(hostenv.node_env(), MICROPYPATH=path)
    args = os.path.join(work, "args.json")
    with open(args, "w") as f:
        json.dump({"url": srv.url("/b.rbota"), "key": ota.modulus_bytes(k3).hex(),
                   "keys": [(b, m.hex(), s.hex()) for b, _, m, s in keys]}, f)
    try:
        p = subprocess.run([exe, script, args], cwd=fs, env=env, capture_output=True,
                           text=True, timeout=300)
    finally:
        srv.stop()
    try:
        if p.returncode:
            raise SystemExit("the update benchmark failed:\n" + p.stdout + p.stderr)
        print("ota_binary: %s" % exe)
        print("".join(x + "\n" for x in p.stdout.splitlines() if not x.startswith("BASE")),
              end="")
        print("ota_update_min_heap_kb: %s" % smallest(exe, script, args, fs, env, keys, data))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
