"""config.json: defaults, clear messages, the host checker, fuzzing on the unix port, and
the node's safe mode on a bad file (issue 4)."""
import json
import os
import random
import subprocess
import sys

import pytest

from tools.host import hostenv
from tools.host.hostrun import HostNode

sys.path.insert(0, os.path.join(hostenv.ROOT, "lib"))
from rbnode import config  # noqa: E402

EXAMPLE = os.path.join(hostenv.ROOT, "config.example.json")
DOC = os.path.join(hostenv.ROOT, "CONFIG.md")


def keys(schema, prefix=""):
    for k, (kind, _d, arg) in schema.items():
        yield prefix + k
        if kind == "sub":
            yield from keys(arg, prefix + k + ".")
        if kind == "list" and arg[0][0] == "sub":
            yield from keys(arg[0][2], prefix + k + "[].")


def test_example_is_valid_and_shows_every_key_with_its_default():
    with open(EXAMPLE) as f:
        raw = json.load(f)
    cfg, errs = config.check(raw)
    assert errs == []
    d = config.defaults()
    for k, v in d.items():
        assert k in raw, "config.example.json lacks %s" % k
        if isinstance(v, dict):
            assert raw[k] == v, "%s: example differs from the default" % k
        elif k != "modules" and k != "drdy_pin":
            assert raw[k] == v, "%s: example %r, default %r" % (k, raw[k], v)
    for m in raw["modules"]:
        assert set(m) == set(config.MODULE)


def test_config_md_documents_every_key():
    with open(DOC) as f:
        doc = f.read()
    missing = [k for k in keys(config.SCHEMA) if "`%s`" % k not in doc]
    assert not missing, missing


@pytest.mark.parametrize("raw, expect", [
    ({"period_s": 5}, "period_s = 5: out of range, allowed 10..3600"),
    ({"period_s": "60"}, 'period_s = "60": must be a whole number 10..3600'),
    ({"i2c": {"freq": True}}, "i2c.freq = true: must be a whole number"),
    ({"i2c": {"frq": 100000}}, "i2c.frq: unknown key - did you mean 'freq'?"),
    ({"mode": "deep"}, 'mode = "deep": must be one of "continuous", "sleep"'),
    ({"modules": [{"name": "x"}]}, "modules[0].address: missing, required"),
    ({"modules": [{"address": "0x90"}]}, 'modules[0].address = "0x90": must be an I2C address'),
    ({"modules": [{"address": 80, "ct": [25]}]}, "modules[0].ct[0] = 25: must be the clamp's rated"),
    ({"modules": [{"address": 80}, {"address": "0x50"}]}, 'modules[1].address = "0x50": already used'),
    ({"node": {"id": "My Node"}}, 'node.id = "My Node": use only a-z, 0-9'),
    ({"drdy_pin": 21, "i2c": {"sda": 21}}, "i2c.sda = 21: the same GPIO is also a DRDY pin"),
    ({"events": {"threshold_w": float("nan")}}, "events.threshold_w = NaN: must be a number"),
    ([1, 2], "the file must hold one JSON object"),
    ({"time": {"tz": "CET-1CEST,M3.5.0"}}, "time.tz = \"CET-1CEST,M3.5.0\": time zone"),
    ({"time": {"ntp": ["a b"]}}, 'time.ntp[0] = "a b": a server name or address'),
    ({"time": {"ntp": ["h:99999"]}}, 'time.ntp[0] = "h:99999": a server name'),
    ({"time": {"resync_h": 0}}, "time.resync_h = 0: out of range, allowed 1..168"),
    ({"tariffs": [{"name": "peak", "windows": [{"from": "07:00"}]}]},
     "tariffs: exactly one tariff without windows is the default"),
    ({"tariffs": [{"windows": []}]}, "tariffs[0].name: missing, required"),
    ({"tariffs": [{"name": "Peak"}]}, 'tariffs[0].name = "Peak": use only a-z'),
    ({"tariffs": [{"name": "a", "windows": [{"from": "7:00"}]}, {"name": "b"}]},
     "tariffs[0] (a) windows[0]: from '7:00': a time of day"),
    ({"tariffs": [{"name": "a", "windows": [{"days": "mon-fri", "to": "09:00"},
                                            {"days": "fri", "from": "08:00"}]}, {"name": "b"}]},
     "tariffs: windows overlap: a fri 00:00-09:00 and a fri 08:00-24:00"),
    ({"tariffs": [{"name": "a"}, {"name": "a"}]}, "tariffs[1]: name 'a' is used twice"),
    ({"tariffs": [{"name": "a"}] * 5}, "tariffs = [{\"name\": \"a\"}, {\"name\": \"a\"}, "),
    ({"ota": {"enabled": True}}, "ota.key: missing, required when ota.enabled is true"),
    ({"ota": {"enabled": True, "key": "abcd"}}, "ota.key is 3 bytes: a 2048- to 4096-bit RSA"),
    ({"ota": {"enabled": True, "key": "QUJD" * 86}},
     "ota.enabled: updates are commanded over MQTT: set mqtt.host"),
    ({"ota": {"confirm_s": 10}}, "ota.confirm_s = 10: out of range, allowed 30..86400"),
    ({"ota": {"enabled": True, "confirm_s": 100}},
     "ota.confirm_s = 100: at least twice period_s (60 s)"),
    ({"ota": {"max_boots": 0}}, "ota.max_boots = 0: out of range, allowed 1..10"),
])
def test_each_problem_is_one_message_naming_key_value_and_allowed(raw, expect):
    cfg, errs = config.check(raw)
    assert cfg is None
    assert any(expect in e for e in errs), errs


def test_syntax_errors_and_missing_file(tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{\n "period_s": 60,\n}\n')
    cfg, errs = config.load(str(p))
    assert cfg is None and len(errs) == 1 and "not valid JSON" in errs[0] and str(p) in errs[0]
    cfg, errs = config.load(str(tmp_path / "nope.json"))
    assert cfg is None and "file not found" in errs[0]


def test_host_checker(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"save_s": 1}))
    out = subprocess.run([sys.executable, "tools/checkconfig.py", EXAMPLE, str(bad)],
                         cwd=hostenv.ROOT, capture_output=True, text=True)
    assert out.returncode == 1
    assert "config.example.json: OK (3 module(s)" in out.stdout
    assert "save_s = 1: out of range, allowed 2..86400" in out.stdout


# ---- fuzzing ------------------------------------------------------------------------------
JUNK = [None, True, False, 0, -1, 1e308, -1e308, 2 ** 40, 3.5, "", "x" * 300, "0x50", [],
        {}, [None], {"a": 1}, "\u00e9\u4e2d", 0.0001]


def mutate(rng, text, raw):
    kind = rng.randrange(9)
    if kind == 0:   # delete a character
        i = rng.randrange(len(text))
        return text[:i] + text[i + 1:]
    if kind == 1:   # insert a character
        i = rng.randrange(len(text))
        return text[:i] + rng.choice('{}[],:"\\x0 \n\t') + text[i:]
    if kind == 2:   # truncate
        return text[:rng.randrange(len(text))]
    doc = json.loads(json.dumps(raw))
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for k in list(node):
                paths.append((node, k))
                walk(node[k], path + [k])
        elif isinstance(node, list):
            for i in range(len(node)):
                paths.append((node, i))
                walk(node[i], path + [i])
    walk(doc, [])
    parent, k = rng.choice(paths)
    if kind in (3, 4, 5):   # a value of another type or range
        parent[k] = rng.choice(JUNK)
    elif kind == 6 and isinstance(parent, dict):   # typo in a key
        v = parent.pop(k)
        parent[k[:-1] + rng.choice("xyz_")] = v
    elif kind == 7 and isinstance(parent, dict):   # a key removed
        parent.pop(k)
    else:   # an extra key, or a nested junk structure
        (parent[k] if isinstance(parent[k], dict) else doc)["extra_%d" % rng.randrange(9)] = \
            rng.choice(JUNK)
    return json.dumps(doc, allow_nan=True)


FUZZ_MP = """
import os, sys
sys.path.insert(0, "lib")
from rbnode import config
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    p = d + "/" + name
    try:
        cfg, errs = config.load(p)
        print("RESULT", name, "ok" if cfg is not None and not errs else "bad", len(errs))
        for e in errs:
            print("MSG", e)
    except Exception as e:
        print("CRASH", name, repr(e))
"""


def test_fuzzed_configs_never_crash_and_always_explain(tmp_path):
    with open(EXAMPLE) as f:
        text = f.read()
    raw = json.loads(text)
    rng = random.Random(2026)
    d = tmp_path / "fuzz"
    d.mkdir()
    n = 400
    for i in range(n):
        t = text
        for _ in range(rng.choice((1, 1, 2, 3))):
            try:
                t = mutate(rng, t, json.loads(t))
            except ValueError:
                t = mutate(rng, t, raw) if rng.random() < 0.5 else t[:-1]
        (d / ("c%03d.json" % i)).write_bytes(t.encode("utf-8", "surrogatepass"))
    (d / "empty.json").write_text("")
    (d / "binary.json").write_bytes(bytes(range(256)))
    script = tmp_path / "fuzz.py"
    script.write_text(FUZZ_MP)
    out = hostenv.run_mp(str(script), args=[str(d)], cwd=hostenv.ROOT, timeout=120)
    lines = out.stdout.splitlines()
    assert not [ln for ln in lines if ln.startswith("CRASH")], out.stdout[-2000:]
    results = [ln.split() for ln in lines if ln.startswith("RESULT")]
    assert len(results) == n + 2, out.stdout[-3000:]
    bad = [r for r in results if r[2] == "bad"]
    assert len(bad) > n // 2                      # most mutations really break the file
    assert all(int(r[3]) >= 1 for r in bad)
    for m in (ln[4:] for ln in lines if ln.startswith("MSG")):
        # every message names the file and then a key (with its value) or the JSON problem
        assert "/fuzz/" in m and ("not valid JSON" in m or "not a text file" in m or
                                  " = " in m or "unknown key" in m or "missing" in m or
                                  "must hold one JSON object" in m or "used more than once" in m
                                  or "channels:" in m), m


# ---- one JSON verdict: the node's reader and the checker's refuse the same files ----------
STRICT_CASES = [
    ('{"period_s": 60,}', "line 1: a trailing comma before }"),
    ('{"modules": [\n {"address": "0x50"},\n]}', "line 2: a trailing comma before ]"),
    ('{"period_s": 60,\n "save_s": 300,\n "period_s": 30}',
     'line 3: key "period_s" given twice in one object (also on line 1)'),
    ('{"mqtt": {"host": "a", "host": "b"}}', 'key "host" given twice'),
    ('\ufeff{"period_s": 60}', "byte order mark (BOM)"),
    ('{"node": {"name": "a,}"}, "x": [1, 2]}', None),        # commas in strings are no commas
    ('{"a": "\\"", "a": 1}', 'key "a" given twice'),        # an escaped quote ends no string
]

STRICT_MP = """
import json, sys
sys.path.insert(0, "lib")
from rbnode import config
with open(sys.argv[1]) as f:
    cases = json.load(f)
print("RESULT " + json.dumps([config.parse(t)[1] for t in cases]))
"""


def test_trailing_commas_bom_and_duplicate_keys_refused_on_node_and_host(tmp_path):
    """MicroPython's reader took a trailing comma (CPython's did not) and both kept the last
    of two equal keys: now both refuse them, with the line, in the same words."""
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([t for t, _ in STRICT_CASES]))
    script = tmp_path / "strict.py"
    script.write_text(STRICT_MP)
    out = hostenv.run_mp(str(script), args=[str(path)], cwd=hostenv.ROOT, timeout=60)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, out.stdout + out.stderr
    for (text, want), node in zip(STRICT_CASES, json.loads(line[0][7:])):
        host = config.parse(text)[1]
        if want is None:
            assert not [e for e in host if "not valid JSON" in e], host
        else:
            assert len(host) == 1 and want in host[0], (text, host)
        assert node == host, (text, node, host)


# ---- text: display names, ids, topic prefixes, the same on the node and in the checker ----
TEXT_CASES = [
    # (config, expected: "ok" or a piece of the one message)
    ({"node": {"name": "Zähler ☀ Haus"}}, "ok"),
    ({"node": {"name": "ä" * 32}}, "ok"),                          # 64 bytes
    ({"node": {"name": "ä" * 33}}, "too long (66 bytes in UTF-8, at most 64)"),
    ({"node": {"name": "bad\u0007bell"}}, "control or invisible character U+0007"),
    ({"node": {"name": "zero\u200bwidth"}}, "U+200B"),
    ({"node": {"name": "bidi\u202eevil"}}, "U+202E"),
    ({"node": {"name": " padded"}}, "starts or ends with a space"),
    ({"node": {"name": "\ud800"}}, "lone surrogate"),
    ({"modules": [{"address": 80, "name": "Küche"}]}, "ok"),
    ({"modules": [{"address": 80, "name": "Salle de bain", "channels": ["Four ☀", ""]}]}, "ok"),
    ({"modules": [{"address": 80, "name": "Küche"}, {"address": 81, "name": "Kuche"}]},
     'modules[1].id = "kuche" (derived from the name "Kuche"): used more than once'),
    ({"modules": [{"address": 80, "id": "Küche"}]}, "use only a-z, 0-9"),
    ({"modules": [{"address": 80, "channels": ["x" * 33]}]}, "33 bytes in UTF-8, at most 32"),
    ({"mqtt": {"base_topic": "zähler/haus"}}, "ok"),
    ({"mqtt": {"base_topic": "$SYS/rbnode"}}, "starts with $"),
    ({"mqtt": {"base_topic": "a b"}}, "space, control or invisible character U+0020"),
    ({"mqtt": {"base_topic": "a\tb"}}, "U+0009"),
    ({"mqtt": {"base_topic": "a\u200bb"}}, "U+200B"),
    ({"mqtt": {"base_topic": "a\u00a0b"}}, "U+00A0"),
    ({"mqtt": {"base_topic": "a\ufeffb"}}, "U+FEFF"),
    ({"mqtt": {"base_topic": "a\u0000b"}}, "U+0000"),
    ({"mqtt": {"base_topic": "home/+/x"}}, "wildcard '+'"),
    ({"mqtt": {"base_topic": "home/#"}}, "wildcard '#'"),
    ({"mqtt": {"base_topic": "a//b"}}, "empty level"),
    ({"mqtt": {"base_topic": "/a"}}, "empty level"),
    ({"mqtt": {"base_topic": "a/"}}, "empty level"),
    ({"mqtt": {"base_topic": ""}}, "must not be empty"),
    ({"mqtt": {"base_topic": "ü" * 33}}, "66 bytes in UTF-8, at most 64"),
    ({"mqtt": {"discovery_prefix": "$homeassistant"}}, "starts with $"),
    ({"wifi": {"ssid": "Café ☕ 5G ü" * 2 + "☕☕"}}, "(36 bytes in UTF-8, at most 32)"),  # 24 chars
    ({"i2c": {"sda": 21, "scl": 21}}, "i2c.scl = 21: the same GPIO as i2c.sda"),
]

TEXT_MP = """
import json, sys
sys.path.insert(0, "lib")
from rbnode import config
with open(sys.argv[1]) as f:
    cases = json.load(f)
out = []
for raw in cases:
    cfg, errs = config.check(raw)
    ids = [m["id"] for m in cfg["modules"]] if cfg else []
    out.append([errs, ids])
print("RESULT " + json.dumps(out))
"""


def test_text_rules_are_the_same_on_the_node_and_in_the_checker(tmp_path):
    """Display names, ids and topic prefixes: every case gets the same verdict, message and
    derived module ids from config.py under CPython (tools/checkconfig.py) and on the unix
    port (the node), whose str and JSON differ (MicroPython's lower() is ASCII only, its JSON
    reader leaves a lone surrogate escape as bytes)."""
    cases = [c for c, _ in TEXT_CASES]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    script = tmp_path / "text.py"
    script.write_text(TEXT_MP)
    out = hostenv.run_mp(str(script), args=[str(path)], cwd=hostenv.ROOT, timeout=60)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, out.stdout + out.stderr
    on_node = json.loads(line[0][7:])
    for (raw, want), (node_errs, node_ids) in zip(TEXT_CASES, on_node):
        cfg, errs = config.check(json.loads(json.dumps(raw)))
        if want == "ok":
            assert not errs and not node_errs, (raw, errs, node_errs)
            assert [m["id"] for m in cfg["modules"]] == node_ids, (raw, node_ids)
        else:
            assert len(errs) == 1 and want in errs[0], (raw, errs)
            if "surrogate" not in want:                 # MicroPython: no str for it at all
                assert node_errs == errs, (raw, errs, node_errs)
            else:
                assert len(node_errs) == 1, node_errs
    ok = dict((json.dumps(c), m) for c, m in zip(cases, on_node))
    assert ok[json.dumps(TEXT_CASES[8][0])][1] == ["kuche"]
    assert ok[json.dumps(TEXT_CASES[9][0])][1] == ["salle-de-bain"]


def test_configs_from_before_ids_keep_their_topics():
    """A module name that is an id already stays the id (the topics and unique ids of an
    existing installation do not move); one that is not is folded into one."""
    cfg, errs = config.check({"modules": [{"address": 80, "name": "basic-pv"},
                                          {"address": 81, "name": "Küche 2"},
                                          {"address": 82, "name": "電気"},
                                          {"address": 83},
                                          {"address": 84, "id": "kept", "name": "Any ☀"}]})
    assert not errs
    assert [(m["id"], m["name"]) for m in cfg["modules"]] == [
        ("basic-pv", "basic-pv"), ("kuche-2", "Küche 2"), ("m52", "電気"), ("m53", "m53"),
        ("kept", "Any ☀")]


# ---- the node on a bad config: safe mode, no restart loop -----------------------------------
@pytest.mark.parametrize("text, expect", [
    ('{"period_s": 60', "not valid JSON"),
    ('{"i2c": {"freq": "fast"}}', 'i2c.freq = "fast": must be a whole number'),
    ('{"modules": [{"adress": "0x50"}]}', "modules[0].adress: unknown key"),
])
def test_node_enters_safe_mode_and_stays_at_the_repl(tmp_path, bench, text, expect):
    node = HostNode(str(tmp_path), bench.address, text, bench_client=bench.client())
    p = node.start(stdout=subprocess.PIPE)
    out, _ = p.communicate(timeout=30)
    out = out.decode()
    assert p.returncode == 0, out
    assert "SAFE MODE" in out and expect in out, out
    assert node.finish() is None                     # the board sits at the REPL: no reset
    with open(os.path.join(node.fs, "safe_mode.txt")) as f:
        assert expect in f.read()
    assert "Traceback" not in out


def test_safe_mode_never_shows_a_password(tmp_path, bench):
    """A too-long or mistyped password is refused without its value (issue 17, part 4): not
    in the node's message, not in safe_mode.txt."""
    secret_w, secret_m = "wifi-Secret-" + "x" * 70, "mqtt-Secret-" + "y" * 130
    for i, cfg in enumerate(({"wifi": {"ssid": "ap", "password": secret_w}},
                             {"mqtt": {"host": "h", "password": secret_m}, "wifi": {"ssid": "a"}},
                             {"wifi": {"ssid": "ap", "password": 12345678901}})):
        node = HostNode(str(tmp_path / str(i)), bench.address, cfg, bench_client=bench.client())
        out = node.start(stdout=subprocess.PIPE).communicate(timeout=30)[0].decode()
        with open(os.path.join(node.fs, "safe_mode.txt")) as f:
            text = out + f.read()
        assert "SAFE MODE" in out and "password" in out and "hidden" in out, out
        for secret in ("Secret", "12345678901"):
            assert secret not in text, text


# ---- GPIOs per board: the same verdict on the node (its own board) and in the checker ------
PIN_CASES = [
    # (board, config, expected: "ok" or a piece of the one message)
    ("ESP32_GENERIC", {}, "ok"),                                    # defaults 19/18
    ("ESP32_GENERIC", {"i2c": {"sda": 21, "scl": 22}, "drdy_pin": 34}, "ok"),  # DRDY may be input only
    ("ESP32_GENERIC", {"i2c": {"sda": 7, "scl": 22}}, "i2c.sda = 7: GPIO7 is wired to the SPI flash"),
    ("ESP32_GENERIC", {"drdy_pin": 11}, "drdy_pin = 11: GPIO11 is wired to the SPI flash"),
    ("ESP32_GENERIC", {"i2c": {"sda": 21, "scl": 35}}, "i2c.scl = 35: GPIO35 is input only"),
    ("ESP32_GENERIC", {"i2c": {"sda": 12, "scl": 22}}, "GPIO12 is the flash-voltage strap"),
    ("ESP32_GENERIC", {"i2c": {"sda": 20, "scl": 22}}, "the ESP32 has no GPIO20 usable here"
                                                       " (GPIO 0-19, 21-23, 25-27, 32-39)"),
    ("ESP32_GENERIC", {"modules": [{"address": 80, "drdy_pin": 40}]},
     "modules[0].drdy_pin = 40: the ESP32 has no GPIO40"),
    ("ESP32_GENERIC", {"i2c": {"sda": 1, "scl": 22}}, "GPIO1 is the REPL's UART (TX)"),
    ("ESP32_GENERIC", {"i2c": {"sda": 18}}, "SDA and SCL are both GPIO18"),  # scl default 18
    ("ESP32_GENERIC", {"drdy_pin": 19}, "drdy_pin = 19: GPIO19 is the board's default I2C SDA"),
    ("ESP32_GENERIC", {"mode": "sleep", "sleep": {"wake_pin": 5, "wake_w": 500}},
     "sleep.wake_pin = 5: the ESP32 wakes from deep sleep only on GPIO 0, 2, 4, 12-15, 25-27"),
    ("ESP32_GENERIC", {"mode": "sleep", "sleep": {"wake_pin": 33, "wake_w": 500}}, "ok"),
    ("ESP32_GENERIC_S3", {"i2c": {"sda": 20, "scl": 9}}, "GPIO20 is USB D+"),
    ("ESP32_GENERIC_S3", {"drdy_pin": 30}, "GPIO30 is wired to the SPI flash"),
    ("ESP32_GENERIC_S3", {"i2c": {"sda": 40, "scl": 41}, "drdy_pin": 34}, "ok"),
    ("ESP32_GENERIC_S3", {"drdy_pin": 23}, "the ESP32-S3 has no GPIO23"),
    ("RPI_PICO_W", {}, "ok"),                                       # defaults 4/5
    ("RPI_PICO_W", {"i2c": {"id": 1, "sda": 26, "scl": 27}}, "ok"),
    ("RPI_PICO_W", {"i2c": {"sda": 5, "scl": 9}}, "i2c.sda = 5: I2C0 takes SDA on GPIO 0, 4, 8, 12, 16, 20, 28"),
    ("RPI_PICO_W", {"i2c": {"id": 1, "sda": 4, "scl": 7}}, "I2C1 takes SDA on GPIO 2, 6, 10, 14, 18, 22, 26"),
    ("RPI_PICO_W", {"drdy_pin": 25}, "drdy_pin = 25: the Pico W's WiFi chip uses GPIO25 (WL_CS)"),
    ("RPI_PICO_W", {"drdy_pin": 4}, "drdy_pin = 4: GPIO4 is the board's default I2C SDA"),
    ("RPI_PICO_W", {"mode": "sleep", "sleep": {"wake_pin": 15, "wake_w": 500}},
     "the Pico W wakes from deep sleep on its timer only"),
    (None, {"i2c": {"sda": 7, "scl": 35}, "drdy_pin": 25}, "ok"),   # no board: no pin rules
]

PIN_MP = """
import json, sys
sys.path.insert(0, "lib")
from rbnode import config
with open(sys.argv[1]) as f:
    cases = json.load(f)
print("RESULT " + json.dumps([config.check(raw, board)[1] for board, raw in cases]))
"""


def test_pins_are_checked_per_board_on_the_node_and_in_the_checker(tmp_path):
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([[b, c] for b, c, _ in PIN_CASES]))
    script = tmp_path / "pins.py"
    script.write_text(PIN_MP)
    out = hostenv.run_mp(str(script), args=[str(path)], cwd=hostenv.ROOT, timeout=60)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, out.stdout + out.stderr
    for (board, raw, want), node in zip(PIN_CASES, json.loads(line[0][7:])):
        errs = config.check(json.loads(json.dumps(raw)), board)[1]
        if want == "ok":
            assert errs == [], (board, raw, errs)
        else:
            assert len(errs) == 1 and want in errs[0], (board, raw, errs)
        assert node == errs, (board, raw, node, errs)
    # the checker names the board's pins in use, and the example runs on every board
    for board in ("ESP32_GENERIC", "ESP32_GENERIC_S3", "RPI_PICO_W"):
        r = subprocess.run([sys.executable, "tools/checkconfig.py", "--board", board, EXAMPLE],
                           capture_output=True, text=True, cwd=hostenv.ROOT)
        assert r.returncode == 0 and "%s: I2C0 on SDA GPIO" % board in r.stdout, r.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"i2c": {"sda": 7, "scl": 22}}))
    r = subprocess.run([sys.executable, "tools/checkconfig.py", "--board", "ESP32_GENERIC",
                        str(bad)], capture_output=True, text=True, cwd=hostenv.ROOT)
    assert r.returncode == 1 and "i2c.sda = 7: GPIO7 is wired to the SPI flash" in r.stdout


def test_the_node_knows_its_board_from_what_micropython_reports():
    from rbnode.pins import this_board
    # os.uname().machine is MICROPY_HW_BOARD_NAME " with " MICROPY_HW_MCU_NAME (v1.29)
    for platform, machine, want in (
            ("esp32", "Generic ESP32 module with ESP32", "ESP32_GENERIC"),
            ("esp32", "Generic ESP32 module with SPIRAM with ESP32", "ESP32_GENERIC"),
            ("esp32", "Generic ESP32 module with ESP32-UNICORE", "ESP32_GENERIC"),
            ("esp32", "Generic ESP32S3 module with ESP32-S3", "ESP32_GENERIC_S3"),
            ("esp32", "ESP32C3 module with ESP32C3", None),        # no rules: not refused
            ("rp2", "Raspberry Pi Pico W with RP2040", "RPI_PICO_W"),
            ("rp2", "Raspberry Pi Pico with RP2040", None),
            ("rp2", "Raspberry Pi Pico 2 W with RP2350", None),
            ("linux", "x86_64", None)):
        assert this_board(platform, machine) == want, machine
