"""Scenario files for the bench (CPython side)."""
import json
import os

DEFAULT = os.path.join(os.path.dirname(__file__), "scenarios", "default.json")


def load_scenario(path=None):
    path = path or DEFAULT
    if not os.path.exists(path):
        alt = os.path.join(os.path.dirname(__file__), "scenarios", path + ".json")
        if os.path.exists(alt):
            path = alt
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError as e:
            raise ValueError("bench scenario %s is not valid JSON: %s" % (path, e))
