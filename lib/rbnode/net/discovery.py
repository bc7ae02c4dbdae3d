"""Home Assistant MQTT discovery payloads (pure: no I/O, no hardware).

    for oid, parts, most in devices(base, node_id, node_info, modules):
        for i, payload in enumerate(parts):             # each built when it is taken
            publish(topic(prefix, oid, i), payload)     # retained; a list of texts (pack)

Device-based discovery (HA 2024.11+): the node is one HA device (diagnostics), every module
another (`via_device` the node), its values components of it. A device's components are
packed, in a fixed order, into messages of at most LIMIT bytes (mqtt_as's guidance: design
for about 1 KiB), sent to <prefix>/device/<object id>[_<n>]/config. The parts a device no
longer needs (names got shorter) must be cleared with an empty retained message, so HA never
keeps a stale copy: the publisher remembers how many it sent (discovery.json, across boots),
and clears no slot it never published (HA warns for each).
unique_id = <node id>_<module uid>_<key>: stable across re-addressing and renaming.

Energy: kWh, device_class energy, state_class total_increasing. No published total ever
decreases (the ledger never does, and the broker's retained total is a floor, publisher.py):
the only decrease HA can see is one the user chose (restore_totals "ledger"); with
total_increasing HA books a drop below 90 % as a new cycle (where `total` would book the
whole lifetime as negative consumption), and subtracts a smaller dip with a warning.
"""
import json

from .. import names

LIMIT = 1024
ORIGIN = {"name": "rbnode", "sw": ""}

# key suffix -> (entity label, device class, unit, state class, value template field)
ENTITIES = {
    "i": ("current", "current", "A", "measurement"),
    "p": ("power", "power", "W", "measurement"),
    "s": ("apparent power", "apparent_power", "VA", "measurement"),
    "q": ("reactive power", "reactive_power", "var", "measurement"),
    "pf": ("power factor", "power_factor", None, "measurement"),
    "ei": ("energy import", "energy", "kWh", "total_increasing"),
    "ee": ("energy export", "energy", "kWh", "total_increasing"),
}
# node diagnostics: key in the health JSON -> (label, device class, unit, state class)
DIAGNOSTICS = (
    ("rssi", "WiFi signal", "signal_strength", "dBm", "measurement"),
    ("uptime", "uptime", "duration", "s", "total_increasing"),
    ("heap", "free heap", "data_size", "B", "measurement"),
    ("retries", "I2C retries", None, None, "total_increasing"),
    ("exhausted", "I2C retries exhausted", None, None, "total_increasing"),
    ("stale", "stale latches", None, None, "total_increasing"),
    ("rejects", "sanity rejects", None, None, "total_increasing"),
    ("drops", "MQTT messages dropped", None, None, "total_increasing"),
    ("rx_drops", "MQTT messages not taken in", None, None, "total_increasing"),
    ("task_failures", "task failures", None, None, "total_increasing"),
    ("storage", "ledger storage", None, None, None),
    ("fw", "firmware", None, None, None),
    ("reset", "last reset reason", None, None, None),
)


def slug(text):
    """An entity-id fragment: lower case, [a-z0-9_] (Latin diacritics folded)."""
    return names.slug(text, "_", 64) or "x"


def _component(uid, eid, name, dclass, unit, sclass, tpl, extra=None):
    c = {"p": "sensor", "name": sentence(name), "uniq_id": uid, "def_ent_id": "sensor." + eid}
    if dclass:
        c["dev_cla"] = dclass
    if unit:
        c["unit_of_meas"] = unit
    if sclass:
        c["stat_cla"] = sclass
    c["val_tpl"] = "{{value_json.%s}}" % tpl
    if extra:
        c.update(extra)
    return c


def channel_name(mod, ch):
    names = mod["channel_names"]
    if ch < len(names) and names[ch]:
        return names[ch] + " "
    return "channel %d " % (ch + 1) if mod["channels"] > 1 else ""


def sentence(name):
    """An entity name as Home Assistant writes them ("Power", "House power"): HA shows it
    after the device's name ("Kitchen Power"... "Kitchen House power")."""
    return name[0].upper() + name[1:] if name and "a" <= name[0] <= "z" else name


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def module_components(nid, mod, energy=False):
    """The components of one module in a fixed order, one at a time: (component id, config).
    energy False: the measurements (read from the module's state topic); True: the energy
    totals (its energy topic). mod: id, name (shown), uid, channels, channel_names, voltage,
    export (bool)."""
    base_uid = "%s_%s_" % (nid, mod["uid"])
    base_eid = "%s_%s_" % (slug(nid), slug(mod["id"]))
    if not energy:
        if mod["voltage"]:
            yield "u", _component(base_uid + "u", base_eid + "voltage", "voltage",
                                  "voltage", "V", "measurement", "u")
        yield "f", _component(base_uid + "f", base_eid + "frequency", "frequency",
                              "frequency", "Hz", "measurement", "f")
    keys = (("ei", "ee") if energy else ("i", "p", "s", "q", "pf")) if mod["voltage"] else \
        (() if energy else ("i",))
    for ch in range(mod["channels"]):
        cname = channel_name(mod, ch)
        for k in keys:
            if k == "ee" and not mod["export"]:
                continue
            label, dclass, unit, sclass = ENTITIES[k]
            cid = "%s%d" % (k, ch)
            tpl = "%s[%d]" % ({"ei": "imp", "ee": "exp"}.get(k, k), ch)
            yield cid, _component(base_uid + cid, base_eid + slug(cname + label),
                                  cname + label, dclass, unit, sclass, tpl)


# the usage topic (payload.usage_json): key -> (label, JSON field, state class); today and
# this month start again at 0 (total_increasing: HA books the drop as a new cycle, as for
# ESPHome's total_daily_energy), yesterday is a value of its own (no state class: no
# statistics, never read as consumption)
USAGE = (("d", " today", "day", "total_increasing"), ("y", " yesterday", "yday", None),
         ("m", " this month", "month", "total_increasing"))
DEMAND = (("dw", "demand", "demand_w"), ("mp", "peak window power", "max_p_w"),
          ("dd", "highest demand today", "demand_day_w"),
          ("dm", "highest demand this month", "demand_month_w"))


def usage_components(nid, mod):
    """The day, month and tariff totals and the demand of a module (its usage topic), one at
    a time: (component id, config). mod as for module_components, plus tariffs (names)."""
    if not mod["voltage"]:
        return
    base_uid = "%s_%s_" % (nid, mod["uid"])
    base_eid = "%s_%s_" % (slug(nid), slug(mod["id"]))
    dirs = (("i", "import", "imp"), ("e", "export", "exp")) if mod["export"] else \
        (("i", "import", "imp"),)
    for ch in range(mod["channels"]):
        cname = channel_name(mod, ch)
        for k, when, field, sclass in USAGE:
            for d, dname, arr in dirs:
                cid = "%s%s%d" % (k, d, ch)
                label = "%senergy %s%s" % (cname, dname, when)
                yield cid, _component(base_uid + cid, base_eid + slug(label), label, "energy",
                                      "kWh", sclass, "%s.%s[%d]" % (field, arr, ch))
        for t in mod["tariffs"]:
            for d, dname, arr in dirs:
                cid = "t%s_%s%d" % (d, t, ch)
                label = "%senergy %s %s" % (cname, dname, t)
                yield cid, _component(base_uid + cid, base_eid + slug(label), label, "energy",
                                      "kWh", "total_increasing",
                                      "t['%s'].%s[%d]" % (t, arr, ch))
    for cid, label, field in DEMAND:
        yield cid, _component(base_uid + cid, base_eid + slug(label), label, "power", "W",
                              "measurement", field)


def component_count(mod):
    """How many components module_components() and usage_components() give for mod (all
    groups)."""
    if not mod["voltage"]:
        return 1 + mod["channels"]
    dirs = 2 if mod["export"] else 1
    return 2 + mod["channels"] * (6 + dirs - 1) + \
        mod["channels"] * dirs * (len(USAGE) + len(mod["tariffs"])) + len(DEMAND)


def node_components(nid):
    for key, label, dclass, unit, sclass in DIAGNOSTICS:
        yield key, _component("%s_%s" % (nid, key), "%s_%s" % (slug(nid), slug(label)),
                              label, dclass, unit, sclass, key, {"ent_cat": "diagnostic"})


def update_components(nid):
    """The node's update entity (HA's MQTT update platform) on <base>/ota, whose "ha" member
    holds exactly the keys HA takes (it refuses any other: "Schema violation")."""
    yield "ota", {"p": "update", "name": "Firmware", "uniq_id": "%s_ota" % nid,
                  "def_ent_id": "update.%s_firmware" % slug(nid), "dev_cla": "firmware",
                  "ent_cat": "diagnostic", "val_tpl": "{{value_json.ha|tojson}}"}


def _utf8_len(text):
    """UTF-8 bytes of text, without a copy on MicroPython (a str is its UTF-8 buffer)."""
    try:
        return len(memoryview(text))
    except TypeError:                   # CPython (the host tools)
        return len(text.encode())


def pack(device, groups, limit=LIMIT):
    """The components of a device in payloads of at most `limit` bytes, each a complete
    device message, one at a time (a generator: one message and one component are held,
    not the device's whole configuration). A payload is a list of texts whose concatenation
    is the JSON message: the device head and one text per component, never joined into one
    large string (text(payload) joins them, for tests). groups: [(shared options, iterator
    of (cid, config))]; a message holds components of one group. The first message carries
    the device and origin details, the others only what HA requires (device ids, origin
    name). A component that does not fit into a message of its own raises ValueError."""
    first = True
    for shared, comps in groups:
        pieces, size = None, 0
        for cid, c in comps:
            head = '"%s":' % cid        # two pieces: the component's text is made once
            piece = _dumps(c)
            n = _utf8_len(head) + _utf8_len(piece)
            if pieces is not None and size + 1 + n + 2 > limit:
                pieces.append("}}")
                yield pieces
                pieces = None
            if pieces is None:
                d = dict(shared)
                d["dev"] = device if first else {"ids": device["ids"]}
                d["o"] = ORIGIN if first else {"name": ORIGIN["name"]}
                first = False
                pieces = [_dumps(d)[:-1] + ',"cmps":{']
                size = _utf8_len(pieces[0])
                if size + n + 2 > limit:
                    raise ValueError("discovery component %s does not fit in %d bytes"
                                     % (cid, limit))
            else:
                head = "," + head
                n += 1
            pieces.append(head)
            pieces.append(piece)
            size += n
        if pieces is not None:
            pieces.append("}}")
            yield pieces


def text(payload):
    """A payload of pack() as one string."""
    return "".join(payload)


def topic(prefix, object_id, part):
    return "%s/device/%s%s/config" % (prefix, object_id, "_%d" % (part + 1) if part else "")


def devices(base, nid, node, modules, limit=LIMIT, expire_after=None):
    """The discovery payloads of the node, one device at a time: (object id, iterator of
    payloads, most), `most` the parts the device could need with the longest names (one per
    component). Everything is built as it is consumed: a device's payloads only when its
    turn comes, each payload only when the one before has been taken.
    node: name, sw, model, ota (the update entity); modules: dicts as for module_components plus variant and fw.
    expire_after (s, sleep mode): the values expire when the node stops waking, instead of
    following the status topic (which says "asleep" between wakes)."""
    ORIGIN["sw"] = node["sw"]
    avty = {} if expire_after else {"avty_t": "%s/%s/status" % (base, nid)}

    def shared(topic):
        d = {"stat_t": topic}
        d.update(avty)
        return d

    def expiring(comps):
        # expire_after is a sensor option, not one HA shares from the device level
        # (there HA refused every message: "extra keys not allowed @ data['expire_after']")
        for cid, c in comps:
            if expire_after:
                c["exp_aft"] = expire_after
            yield cid, c
    groups = [(shared("%s/%s/health" % (base, nid)), expiring(node_components(nid)))]
    if node.get("ota"):
        groups.append((shared("%s/%s/ota" % (base, nid)), update_components(nid)))
    yield (nid, pack({"ids": [nid], "name": node["name"], "mf": "rbnode",
                      "mdl": node["model"], "sw": node["sw"]}, groups, limit),
           len(DIAGNOSTICS) + (1 if node.get("ota") else 0))
    for mod in modules:
        oid = "%s_%s" % (nid, mod["uid"])
        mt = "%s/%s/%s/" % (base, nid, mod["id"])
        dev = {"ids": [oid], "name": mod["name"], "mf": "rbAmp", "mdl": mod["variant"],
               "sw": mod["fw"], "sn": mod["uid"], "via_device": nid}
        yield (oid, pack(dev, [(shared(mt + "state"), expiring(module_components(nid, mod))),
                               (shared(mt + "energy"),
                                expiring(module_components(nid, mod, True))),
                               (shared(mt + "usage"), expiring(usage_components(nid, mod)))],
                    limit),
               component_count(mod))
