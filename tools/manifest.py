"""The firmware manifests (firmware/): read them as MicroPython's tools/manifestfile.py does,
and check them. No MicroPython checkout is needed: what a manifest takes from the port
($(PORT_DIR), $(BOARD_DIR), require()) is recorded, not followed.

    python tools/manifest.py check     # the CI check (make manifest-check)
    python tools/manifest.py list      # frozen files: target <- source

The check: every path a manifest references exists; every module under lib/ is frozen and
tracked by git; every board has a manifest that includes the application's; the versions
agree (manifest metadata, rbamp, rbnode); mqtt_as in build/deps is the pinned commit; every
frozen module compiles with mpy-cross for each port's architecture (xtensawin for ESP32 and
ESP32-S3, armv6m for RP2040, x64 for the unix port). It prints the frozen .mpy sizes.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import boards, deps  # noqa: E402

ROOT = boards.ROOT
HOST_ONLY = {"lib/rbamp/smbus.py"}      # CPython only (smbus2): left out by the driver's manifest
APP = os.path.join(ROOT, "firmware", "manifest.py")


class ManifestError(Exception):
    pass


class Manifest:
    """Runs manifest files with a recording API. `files`: [(target, source)]."""

    def __init__(self, path_vars=None):
        self.path_vars = dict(path_vars or {})
        self.files = []
        self.required = []
        self.external = []      # $(...) includes not followed (the port's own manifests)
        self.metadata_kw = {}
        self.errors = []
        self._visited = set()

    def _resolve(self, path):
        for name, value in self.path_vars.items():
            path = path.replace("$(%s)" % name, value)
        return None if "$(" in path else os.path.abspath(path)

    def _globals(self):
        return {"metadata": self.metadata, "include": self.include, "require": self.require,
                "package": self.package, "module": self.module, "freeze": self.freeze,
                "add_library": lambda *a, **k: None, "options": _Options()}

    def include(self, path, **_kw):
        real = self._resolve(path)
        if real is None:
            self.external.append(path)
            return
        if os.path.isdir(real):
            real = os.path.join(real, "manifest.py")
        if real in self._visited:
            return
        if not os.path.isfile(real):
            self.errors.append("include(%r): %s does not exist" % (path, real))
            return
        self._visited.add(real)
        prev = os.getcwd()
        os.chdir(os.path.dirname(real))
        try:
            with open(real) as f:
                exec(compile(f.read(), real, "exec"), self._globals())
        finally:
            os.chdir(prev)

    def metadata(self, **kw):
        # MicroPython's manifestfile.py keeps one metadata per include chain (only require()
        # starts a new one) and refuses a second call: the build would stop there
        if self.metadata_kw:
            self.errors.append("metadata() is called twice in one include chain: MicroPython "
                               "refuses that ('Duplicate call to metadata()'); keep it in "
                               "firmware/manifest.py only")
            return
        self.metadata_kw.update(kw)

    def require(self, name, **_kw):
        self.required.append(name)

    def package(self, name, files=None, base_path=".", opt=None):
        base = self._resolve(base_path)
        top = os.path.join(base, name)
        if not os.path.isdir(top):
            self.errors.append("package(%r, base_path=%r): %s does not exist" % (
                name, base_path, top))
            return
        for d, _dirs, names in os.walk(top):
            for n in sorted(names):
                if n.endswith(".py"):
                    src = os.path.join(d, n)
                    rel = os.path.relpath(src, base)
                    if files is None or os.path.relpath(src, top) in files:
                        self.files.append((rel, src))

    def module(self, path, base_path=".", opt=None):
        src = os.path.join(self._resolve(base_path), path)
        if not os.path.isfile(src):
            self.errors.append("module(%r, base_path=%r): %s does not exist" % (
                path, base_path, src))
            return
        self.files.append((path, src))

    def freeze(self, path, script=None, opt=None):
        self.errors.append("freeze(%r): use package()/module() (freeze() is legacy)" % path)


class _Options:
    def defaults(self, **kw):
        self.__dict__.update({k: v for k, v in kw.items() if k not in self.__dict__})

    def __getattr__(self, name):
        return None


def read(board=None, dep_dir=None):
    """The application manifest (board None) or a board's, evaluated."""
    os.environ["RBNODE_DEPS"] = dep_dir or deps.DEPS
    m = Manifest()
    m.include(boards.manifest(board) if board else APP)
    return m


def c_name(target):
    """The C identifier MicroPython's mpy-tool.py makes of a frozen module's path (its tables
    are named after it): 'rbnode/version.py' -> 'rbnode_version'."""
    return re.sub("[^a-zA-Z0-9_]", "_", "_".join(target.split(".")[:-1]))


def c_name_clashes(targets):
    """Frozen modules whose C names are the same: the image's frozen_content.c defines the
    same tables twice and does not compile (it happened: rbnode/version.py and a generated
    rbnode_version.py)."""
    seen = {}
    for t in targets:
        seen.setdefault(c_name(t), []).append(t)
    return ["%s: frozen modules with one C name (%s): MicroPython's frozen_content.c will not "
            "compile; rename one" % (" and ".join(sorted(ts)), n)
            for n, ts in sorted(seen.items()) if len(ts) > 1]


def check(compile_mpy=True, out=print):
    """All checks; returns the list of problems (empty: good)."""
    errs = []
    try:
        deps.prepare()
    except deps.DepsError as e:
        return [str(e)]
    app = read()
    errs += app.errors
    frozen = {src for _t, src in app.files}
    targets = [t for t, _s in app.files]
    errs += ["%s is frozen twice" % t for t in set(targets) if targets.count(t) > 1]
    errs += c_name_clashes(targets)
    lib = os.path.join(ROOT, "lib")
    for d, _dirs, names in os.walk(lib):
        for n in names:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, ROOT)
            if n.endswith(".py") and "__pycache__" not in d and p not in frozen and \
                    n != "manifest.py" and rel not in HOST_ONLY:
                errs.append("%s is not frozen (firmware/manifest.py)" % rel)
    errs += _untracked([s for s in frozen if s.startswith(lib + os.sep)])
    for name in boards.BOARDS:
        b = read(name)
        errs += ["%s: %s" % (name, e) for e in b.errors]
        if not set(app.files) <= set(b.files):
            errs.append("%s: firmware/boards/%s/manifest.py does not include the application's "
                        "manifest" % (name, name))
        if not b.external:
            errs.append("%s: the board manifest includes no port manifest" % name)
    want = app.metadata_kw.get("version")
    for pkg in ("rbnode", "rbamp"):
        v = deps.package_version(pkg)
        if v != want:
            errs.append("version: lib/%s says %s, firmware/manifest.py metadata says %s"
                        % (pkg, v, want))
    if compile_mpy and not errs:
        errs += _compile(app.files, out)
    return errs


def _untracked(paths):
    try:
        tracked = subprocess.run(["git", "ls-files", "lib"], cwd=ROOT, capture_output=True,
                                 text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return []          # not a git checkout (e.g. a release tarball): nothing to compare
    tracked = {os.path.join(ROOT, p) for p in tracked}
    return ["%s is frozen but not tracked by git (a clean clone would not have it)"
            % os.path.relpath(p, ROOT) for p in sorted(paths) if p not in tracked]


def mpy_cross(src, target, arch, dst, opt=None):
    """Compile one frozen module as the port's build does (source name = its target path);
    opt: mpy-cross -O level (None: its default)."""
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    exe = exe if os.path.exists(exe) else "mpy-cross"
    return subprocess.run([exe, "-march=" + arch, "-s", target, "-o", dst, src] +
                          (["-O%d" % opt] if opt is not None else []),
                          capture_output=True, text=True)


def _compile(files, out):
    """Every frozen module through mpy-cross for every port's architecture."""
    errs = []
    for arch in sorted({b["arch"] for b in boards.BOARDS.values()}):
        sizes, e = compile_sizes(files, arch)
        errs += e
        if arch == "xtensawin" and not e:
            for top, n in sorted(sizes.items()):
                out("frozen %s: %d bytes of .mpy (xtensawin)" % (top, n))
    return errs


def compile_sizes(files, arch):
    """({top-level package or module: bytes of .mpy}, [errors]) of the frozen files."""
    errs, sizes = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for target, src in files:
            dst = os.path.join(tmp, arch + ".mpy")
            r = mpy_cross(src, target, arch, dst)
            if r.returncode:
                errs.append("mpy-cross -march=%s %s: %s" % (
                    arch, os.path.relpath(src, ROOT), (r.stderr or r.stdout).strip()))
            else:
                top = target.split("/")[0].replace(".py", "")
                sizes[top] = sizes.get(top, 0) + os.path.getsize(dst)
    return sizes, errs


def main(argv):
    cmd = argv[0] if argv else "check"
    if cmd == "list":
        deps.prepare()
        for target, src in read().files:
            print("%s <- %s" % (target, os.path.relpath(src, ROOT)))
        return 0
    errs = check()
    for e in errs:
        print("manifest check: " + e)
    print("manifest check: %s" % ("FAILED (%d problems)" % len(errs) if errs else "ok"))
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
