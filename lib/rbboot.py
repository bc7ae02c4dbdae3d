"""Which copy of the application runs (issue 22): the image's own (frozen, or /lib), or an
update installed over the air in a slot (rbnode/ota). Part of the image, never of an update,
so a bad update cannot break the choice; it imports nothing of rbnode's.

    boot.py:  import rbboot; rbboot.select()     # before anything imports rbnode
    main.py:  rbboot.failed(reason)              # the app did not start (exception, safe mode)
    the app:  rbboot.state(), confirm(), rollback(reason), switch(slot, version, max_boots)

Flash (paths relative to the filesystem's root, the boards' working directory):
    ota/state          line 1: JSON {"active", "prev", "trial", "last"}; line 2: its SHA-256
                       (hex, 16 digits). Written to ota/state.new and renamed over it: a power
                       cut leaves the old state or the new one, never half of one.
    ota/a/, ota/b/     a slot: rbnode/, rbamp/, rbnode_build.mpy, and MANIFEST, written by the
                       installer only after the signature and every file's hash were checked
                       (a slot without one is unfinished: never run).

select(): a slot runs only if its MANIFEST is there, its .mpy format is this firmware's, its
version is newer than the image's (an image flashed by cable with a newer app wins), and
every file has its size and (except on a deep-sleep wake, to keep wakes short) its SHA-256.
Otherwise the previous slot, otherwise the image's app, and the reason goes into "last".

A firmware update (ESP32, rbnode/ota/firmware.py): "fw" {"partition", "version", and the
slot state to return to} from switch_firmware until the new firmware confirms (then
Partition.mark_app_valid_cancel_rollback). Its trial is the bootloader's: one boot, no
reset before confirm. A boot from any other partition finds "fw": the bootloader went back
(or the power failed before set_boot); the slots that ran with this firmware run again.

A trial: the first boots of a new version, until the app calls confirm() (it reported
healthy, rbnode/ota/update.py). Every boot but a deep-sleep wake counts; one more than
"max" boots, or failed(), rolls back to the previous version (sleep mode's deadline in time
is on the RTC: trial_since). crash.json (the app's crash count) is removed at a rollback:
those crashes were the new version's.
"""
import os
import sys

DIR = "ota"
STATE = DIR + "/state"
SLOTS = ("a", "b")
CRASH_COUNT = "crash.json"      # rbnode/app.py's
SLOT_KEYS = ("active", "version", "prev", "prev_version")


def _hash(data):
    import hashlib
    import binascii
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def read():
    """(state dict, None), or (None, why) when there is none or it is unusable."""
    try:
        with open(STATE, "rb") as f:
            body = f.readline().rstrip(b"\n")
            check = f.readline().strip()
    except OSError:
        return None, None
    import json
    try:
        if _hash(body)[:16].encode() != check:
            raise ValueError("checksum")
        st = json.loads(body.decode())
        if not isinstance(st, dict) or st.get("active") not in (None,) + SLOTS or \
                st.get("prev") not in (None,) + SLOTS:
            raise ValueError("fields")
    except (ValueError, TypeError) as e:       # UnicodeError is a ValueError
        return None, "ota/state is damaged (%s): running the image's app" % (e,)
    return st, None


def write(st):
    import json
    body = json.dumps(st)
    tmp = STATE + ".new"
    try:
        os.mkdir(DIR)             # a firmware update writes the state before any slot
    except OSError:
        pass
    with open(tmp, "w") as f:
        f.write(body + "\n" + _hash(body.encode())[:16] + "\n")
    os.rename(tmp, STATE)


def version_key(v):
    """"1.2.3" or "1.2.3+local" -> (1, 2, 3); None if it is not that form."""
    if not isinstance(v, str):
        return None
    parts = v.split("+", 1)[0].split(".")
    if not 1 <= len(parts) <= 4 or not all(p.isdigit() and len(p) <= 6 for p in parts):
        return None
    return tuple(int(p) for p in parts)


def image_version():
    """The version of the image's own app (frozen rbnode_build, or the package's), without
    leaving either imported."""
    try:
        try:
            from rbnode_build import VERSION as v
        except ImportError:
            from rbnode import __version__ as v
    except ImportError:
        v = None
    _purge()
    return v


def mpy_version():
    """"6.3": the .mpy format this firmware loads (None: it loads none)."""
    m = getattr(sys.implementation, "_mpy", None)
    return None if m is None else "%d.%d" % (m & 0xFF, (m >> 8) & 3)


def manifest(slot):
    """A slot's MANIFEST: (header dict, [(size, sha256 hex, path)]), or raises OSError /
    ValueError."""
    import json
    files = []
    with open("%s/%s/MANIFEST" % (DIR, slot)) as f:
        head = json.loads(f.readline())
        for line in f:
            kind, size, digest, path = line.rstrip("\n").split(" ", 3)
            if kind != "F":
                raise ValueError("a line that is not a file")
            files.append((int(size), digest, path))
    if not isinstance(head, dict) or len(files) != head.get("files"):
        raise ValueError("it lists %d files, its header says %r" % (len(files), head.get("files")))
    return head, files


def check(slot, full=True, image=None):
    """None when slot may run, else why not. full: every file's SHA-256 too."""
    try:
        head, files = manifest(slot)
    except OSError:
        return "no MANIFEST (the slot is empty or its install did not finish)"
    except (ValueError, TypeError) as e:
        return "MANIFEST unreadable (%s)" % (e,)
    if head.get("mpy") != mpy_version():
        return ".mpy format %s, this firmware loads %s" % (head.get("mpy"), mpy_version())
    mine = version_key(head.get("version"))
    if mine is None:
        return "version %r is not of the form 1.2.3" % (head.get("version"),)
    img = version_key(image)
    if img is not None and mine <= img:
        return "version %s is not newer than the image's app %s" % (head["version"], image)
    import hashlib
    import binascii
    buf = bytearray(512)
    for size, digest, path in files:
        p = "%s/%s/%s" % (DIR, slot, path)
        try:
            if os.stat(p)[6] != size:
                return "%s: %d bytes, the manifest says %d" % (path, os.stat(p)[6], size)
            if not full:
                continue
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    h.update(buf if n == len(buf) else buf[:n])
        except OSError as e:
            return "%s: %s" % (path, e)
        if binascii.hexlify(h.digest()).decode() != digest:
            return "%s: its SHA-256 is not the manifest's (flash damaged?)" % path
    return None


def _wake():
    """This boot is a deep-sleep wake: ESP32 says so; RP2040 (a watchdog reboot) by the mark
    rbnode/board.py left in machine.mem_backup()[0] (read here, cleared by the app)."""
    try:
        import machine
        if not hasattr(machine, "DEEPSLEEP_RESET"):
            return machine.reset_cause() == machine.WDT_RESET and \
                getattr(machine, "mem_backup")()[0] == 0x534C5031    # board.SLEPT
        return machine.reset_cause() == machine.DEEPSLEEP_RESET
    except (ImportError, AttributeError, OSError, IndexError, ValueError):
        return False


def _purge():
    for k in list(sys.modules):
        if k == "rbnode" or k.startswith("rbnode.") or k == "rbnode_build":
            del sys.modules[k]


def _remove(p):
    try:
        os.remove(p)
    except OSError:
        pass


def _back(st, reason, result="rolled_back"):
    """st back to its previous version (not written). result "slot_bad": the slot was not on
    trial (a confirmed version damaged on the flash): the app's crash count is its own."""
    t = st.get("trial") or {}
    st["last"] = {"result": result, "version": t.get("version") or st.get("version"),
                  "reason": reason}
    st["active"], st["prev"], st["trial"] = st.get("prev"), None, None
    st["version"] = st.pop("prev_version", None)
    if result == "rolled_back":
        _remove(CRASH_COUNT)
    print("rbboot: %s: %s, running %s" % (result.replace("_", " "), reason, _name(st)))


def _name(st):
    return "slot %s (%s)" % (st["active"], st.get("version")) if st.get("active") else \
        "the image's app"


def _partition():
    """The app partition this firmware runs from (ESP32 OTA builds), else None."""
    try:
        from esp32 import Partition  # pyright: ignore[reportMissingImports] (ESP32 only)
        return Partition(Partition.RUNNING).info()[4]
    except (ImportError, AttributeError, OSError):
        return None


def _firmware_back(st, fw, running):
    """The bootloader started the firmware before (the new one did not call
    mark_app_valid_cancel_rollback before a reset): the app that ran with it, again."""
    reason = fw.get("why") or ("firmware %s did not start, or was reset before it reported "
                               "healthy (or the power failed during the switch): the "
                               "bootloader went back to %s" % (fw.get("version"), running))
    st["last"] = {"result": "rolled_back", "version": fw.get("version"), "reason": reason}
    st.update(fw.get("slots") or {})
    del st["fw"]
    print("rbboot: rolled back: %s" % reason)


def select():
    """Put the slot to run ahead on sys.path; returns its name or None (the image's app)."""
    sys.modules.pop(__name__, None)         # nothing keeps this module after the boot
    st, why = read()
    if why:
        print("rbboot: " + why)
    if st is None:
        return None
    changed = False
    fw = st.get("fw")
    if fw:
        part = _partition()
        if part != fw.get("partition"):
            _firmware_back(st, fw, part)
            changed = True
    wake = _wake()
    t = st.get("trial")
    if t and not wake:
        t["boots"] = t.get("boots", 0) + 1
        changed = True
        if t["boots"] > t.get("max", 3):
            _back(st, "version %s did not report healthy in %d boots" % (
                t.get("version"), t["boots"] - 1))
    image = image_version()
    for _ in SLOTS:
        slot = st.get("active")
        if slot is None:
            break
        why = check(slot, full=not wake, image=image)
        if why is None:
            break
        changed = True
        _back(st, "slot %s: %s" % (slot, why), "rolled_back" if st.get("trial") else "slot_bad")
    if changed:
        try:
            write(st)
        except OSError as e:
            print("rbboot: ota/state not written (%s)" % (e,))
    slot = st.get("active")
    if slot is None:
        return None
    sys.path.insert(0, "%s/%s" % (DIR, slot))
    return slot


def state():
    """The state as select() left it (None: no update was ever installed)."""
    return read()[0]


def switch(slot, version, max_boots):
    """Make slot (just installed and checked) the active one, in trial; the running one
    becomes the previous version."""
    st = read()[0] or {}
    run = st.get("active")                    # the running one (None: the image's app)
    st.update({"prev": run, "prev_version": st.get("version") if run else None,
               "active": slot, "version": version,
               "trial": {"version": version, "boots": 0, "max": max_boots}})
    write(st)


def switch_firmware(partition, version):
    """Before Partition.set_boot(partition): a firmware update in trial. The app slots
    step aside (the new image's own app runs), kept for a return to this firmware."""
    st = read()[0] or {}
    st["fw"] = {"partition": partition, "version": version,
                "slots": {k: st.get(k) for k in SLOT_KEYS}}
    st.update(dict.fromkeys(SLOT_KEYS), trial=None)
    write(st)


def cancel_firmware():
    """set_boot refused the image: as before switch_firmware."""
    st = read()[0]
    if st and st.get("fw"):
        st.update(st.pop("fw").get("slots") or {})
        write(st)


def firmware_trial(st=None):
    """The firmware update on trial, running now ({"partition", "version", ...}), or None.
    st: the state already read (else it is read here)."""
    st = st or read()[0]
    fw = st and st.get("fw")
    return fw if fw and fw.get("partition") == _partition() else None


def running():
    """(slot, version) of the app running now: (None, None) for the image's app."""
    st = read()[0]
    if not st or not st.get("active"):
        return None, None
    return st["active"], st.get("version")


def release(slot):
    """Before an install overwrites slot: no state refers to it any more."""
    st = read()[0]
    if st and st.get("prev") == slot:
        st["prev"] = None
        st.pop("prev_version", None)
        write(st)


def confirm():
    """The version in trial reported healthy: it stays (a firmware: the bootloader told)."""
    st = read()[0]
    fw = firmware_trial(st)
    if fw and fw.get("why"):
        return False                          # rolled back already: the reset comes next
    if fw:
        from esp32 import Partition  # pyright: ignore[reportMissingImports] (ESP32 only)
        Partition.mark_app_valid_cancel_rollback()
        st["last"] = {"result": "ok", "version": fw.get("version"), "reason": None}
        del st["fw"]
        write(st)
        return True
    if st and st.get("trial"):
        st["last"] = {"result": "ok", "version": st["trial"].get("version"), "reason": None}
        st["trial"] = None
        write(st)
        return True
    return False


def rollback(reason):
    """Back to the previous version now (the app resets the board next). False when there
    is nothing to go back to."""
    st = read()[0]
    fw = firmware_trial(st)
    if fw:
        fw["why"] = reason                  # the reset makes the bootloader go back
        write(st)
        return True
    if not st or not st.get("active"):
        return False
    _back(st, reason)
    write(st)
    return True


def in_trial():
    st = read()[0]
    return bool(st and (st.get("trial") or st.get("fw")))


def trial_since(now):
    """Sleep mode's trial deadline (deep-sleep wakes are not boots): the RTC time (ms) of the
    trial's first wake, written at the first call, and again if the clock is now before it
    (a power cut reset the RTC: that boot was counted). None when no trial runs."""
    st = read()[0]
    t = st and (st.get("trial") or st.get("fw"))
    if not t:
        return None
    since = t.get("since")
    if not isinstance(since, int) or since > now:
        t["since"] = since = now
        write(st)
    return since


def failed(reason):
    """The app did not start (main.py, safe mode). In a trial: roll back and reset (True
    only where the board cannot be reset); otherwise False, nothing changes."""
    if not in_trial():
        return False
    rollback("version did not start: %s" % (reason,))
    try:
        import machine
        machine.reset()
    except ImportError:
        pass
    return True
