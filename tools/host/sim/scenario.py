"""Scenario files for the simulator (CPython side): all of them in scenarios/, by name
(`energy` or `energy.json`) or by path."""
import json
import os

SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
DEFAULT = os.path.join(SCENARIOS, "default.json")


def load_scenario(path=None):
    path = path or DEFAULT
    if not os.path.exists(path):
        for alt in (os.path.join(SCENARIOS, path), os.path.join(SCENARIOS, path + ".json")):
            if os.path.exists(alt):
                path = alt
                break
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError as e:
            raise ValueError("bench scenario %s is not valid JSON: %s" % (path, e))
