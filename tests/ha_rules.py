"""Home Assistant's rules for MQTT device-based discovery of sensors, as tables.

Taken from Home Assistant 2026.2 (homeassistant/components/mqtt/abbreviations.py and
schemas.py, sensor/const.py DEVICE_CLASS_UNITS / DEVICE_CLASS_STATE_CLASSES, energy/validate.py)
for the device classes a power meter uses. check_device_message() returns the problems of one
discovery payload; an empty list means HA accepts it.
"""
import json
import re

ABBREVIATIONS = {  # the ones a sensor may use, abbreviation -> option
    "avty_t": "availability_topic", "cmps": "components", "def_ent_id": "default_entity_id",
    "dev": "device", "dev_cla": "device_class", "ent_cat": "entity_category",
    "exp_aft": "expire_after", "o": "origin", "p": "platform", "stat_cla": "state_class",
    "stat_t": "state_topic", "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template", "sug_dsp_prc": "suggested_display_precision",
}
DEVICE_KEYS = {"ids", "identifiers", "name", "mf", "manufacturer", "mdl", "model", "sw",
               "sw_version", "hw", "sn", "serial_number", "via_device", "cns", "cu", "sa"}
ORIGIN_KEYS = {"name", "sw", "sw_version", "url", "support_url"}
SHARED = {"availability_topic", "state_topic", "qos", "encoding"}
SENSOR_KEYS = {"platform", "name", "unique_id", "default_entity_id", "device_class",
               "unit_of_measurement", "state_class", "value_template", "state_topic",
               "availability_topic", "entity_category", "expire_after",
               "suggested_display_precision"}

UNITS = {   # DEVICE_CLASS_UNITS
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "current": {"A", "mA"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "apparent_power": {"mVA", "VA", "kVA"},
    "reactive_power": {"mvar", "var", "kvar"},
    "power_factor": {None, "%"},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal",
               "Mcal", "Gcal"},
    "signal_strength": {"dB", "dBm"},
    "duration": {"d", "h", "min", "s", "ms", "µs"},
    "data_size": {"bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB",
                  "YB", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"},
}
STATE_CLASSES = {   # DEVICE_CLASS_STATE_CLASSES
    "voltage": {"measurement"}, "current": {"measurement"}, "power": {"measurement"},
    "apparent_power": {"measurement"}, "reactive_power": {"measurement"},
    "power_factor": {"measurement"}, "frequency": {"measurement"},
    "energy": {"total", "total_increasing"}, "signal_strength": {"measurement"},
    "duration": {"measurement", "total", "total_increasing"},
    "data_size": {"measurement", "total", "total_increasing"},
}
ALL_STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
TOPIC_RE = re.compile(r"^[^/]+/device/[a-zA-Z0-9_-]+/config$")


def expand(d):
    return {ABBREVIATIONS.get(k, k): v for k, v in d.items()}


def check_device_message(topic, payload):
    """Problems of one device discovery message (empty list: accepted)."""
    errs = []
    if not TOPIC_RE.match(topic):
        errs.append("topic %s: object id must be [a-zA-Z0-9_-]" % topic)
    doc = expand(json.loads(payload))
    for k in ("device", "origin", "components"):
        if k not in doc:
            errs.append("%s: %s missing" % (topic, k))
    dev = doc.get("device", {})
    if set(dev) - DEVICE_KEYS:
        errs.append("device keys %s" % (set(dev) - DEVICE_KEYS))
    if not dev.get("ids") and not dev.get("identifiers") and not dev.get("cns"):
        errs.append("device without identifiers")
    org = doc.get("origin", {})
    if "name" not in org or set(org) - ORIGIN_KEYS:
        errs.append("origin %s" % org)
    for k in doc:
        if k not in ("device", "origin", "components") and k not in SHARED:
            errs.append("%s: %s is not a shared option" % (topic, k))
    for cid, c in doc.get("components", {}).items():
        c = expand(c)
        where = "%s %s" % (topic, cid)
        if c.get("platform") != "sensor":
            errs.append("%s: platform %s" % (where, c.get("platform")))
        if set(c) - SENSOR_KEYS:
            errs.append("%s: unknown options %s" % (where, set(c) - SENSOR_KEYS))
        if "unique_id" not in c:
            errs.append("%s: unique_id missing" % where)
        if "object_id" in c:
            errs.append("%s: object_id is deprecated" % where)
        if "state_topic" not in c and "state_topic" not in doc:
            errs.append("%s: no state topic" % where)
        dc, unit, sc = c.get("device_class"), c.get("unit_of_measurement"), c.get("state_class")
        if dc is not None:
            if dc not in UNITS:
                errs.append("%s: device_class %s unknown here" % (where, dc))
            elif unit not in UNITS[dc]:
                errs.append("%s: unit %r not allowed for %s" % (where, unit, dc))
            if sc is not None and sc not in STATE_CLASSES.get(dc, ()):
                errs.append("%s: state_class %s not allowed for %s" % (where, sc, dc))
        if sc is not None and sc not in ALL_STATE_CLASSES:
            errs.append("%s: state_class %s" % (where, sc))
        if c.get("entity_category") not in (None, "diagnostic", "config"):
            errs.append("%s: entity_category %s" % (where, c.get("entity_category")))
        eid = c.get("default_entity_id", "sensor.x")
        if not re.match(r"^sensor\.[a-z0-9_]+$", eid):
            errs.append("%s: default_entity_id %s" % (where, eid))
    return errs


def energy_dashboard_ok(c):
    """HA's Energy dashboard accepts a sensor with these options (energy/validate.py)."""
    c = expand(c)
    return (c.get("device_class") == "energy" and c.get("unit_of_measurement") in UNITS["energy"]
            and c.get("state_class") in ("total", "total_increasing"))
