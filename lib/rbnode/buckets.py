"""A meter's per-channel import/export buckets (ledger.py: "ch", "tar", "day", "yday",
"mon"): their arithmetic, the provisional energy added, the saved floors kept, two states
merged. Pure: lists and dicts of integers (µWh), no I/O."""

NO_TARIFF = "(none)"      # the bucket of a ledger with tariff totals and no tariffs configured


def zeros(n):
    return [[0, 0] for _ in range(n)]


def copy(x):
    """A deep copy of a ledger structure (lists, dicts, numbers, text)."""
    if isinstance(x, list):
        return [copy(v) for v in x]
    if isinstance(x, dict):
        return {k: copy(v) for k, v in x.items()}
    return x


def plus(pairs, prov=None, last=None):
    """[[imp, exp]] + the provisional energy, never below `last` (what a save wrote)."""
    out = []
    for ch, (i, e) in enumerate(pairs):
        if prov and ch < len(prov):
            i, e = i + prov[ch][0], e + prov[ch][1]
        if last and ch < len(last):
            i, e = max(i, last[ch][0]), max(e, last[ch][1])
        out.append([i, e])
    return out


def dated(v, prov, last):
    """A day or month bucket [number, pairs] + provisional, never below the saved one of the
    same number."""
    return [v[0], plus(v[1], prov, last[1] if last and last[0] == v[0] else None)]


def merge(mine, other, default=None):
    """A meter's state from two sources (the sleep state and the flash ledger): each total
    the larger, a dated bucket the later; the lifetime stays the sum of mine's tariff totals
    (a lifetime above their sum, from a state without them: the rest to `default`)."""
    n = max(len(mine["ch"]), len(other["ch"]))
    for m in (mine, other):
        widen(m, n)
    mine["ch"] = plus(mine["ch"], None, other["ch"])
    ta, tb = mine.get("tar"), other.get("tar")
    if ta is not None:
        for t, v in (tb or {}).items():
            ta[t] = plus(ta[t], None, v) if t in ta else v
        s = sums(ta, n)
        if any(mine["ch"][ch][j] > s[ch][j] for ch in range(n) for j in (0, 1)):
            d = ta.setdefault(default or NO_TARIFF, zeros(n))
            for ch in range(n):
                for j in (0, 1):
                    d[ch][j] += max(0, mine["ch"][ch][j] - s[ch][j])
        mine["ch"] = sums(ta, n)
    for b in ("day", "yday", "mon"):
        va, vb = mine.get(b), other.get(b)
        if vb is not None and (va is None or (vb[0] or 0) > (va[0] or 0)):
            mine[b] = vb
        elif va is not None and vb is not None and va[0] == vb[0]:
            va[1] = plus(va[1], None, vb[1])


def sums(tar, n):
    out = zeros(n)
    for v in tar.values():
        for ch in range(n):
            out[ch][0] += v[ch][0]
            out[ch][1] += v[ch][1]
    return out


def widen(m, n):
    """Every per-channel list of meter m to n channels."""
    lists = [m["ch"]] + list((m.get("tar") or {}).values()) + \
        [m[b][1] for b in ("day", "yday", "mon") if m.get(b) is not None]
    for v in lists:
        while len(v) < n:
            v.append([0, 0])
