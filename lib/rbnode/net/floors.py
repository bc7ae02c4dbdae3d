"""The broker's retained totals as floors: a published total never goes below what the
broker already holds for the same module UID, or below what the node published before.

At the first connect the node reads its own retained totals once (publisher.py). The first
time a module's totals are to be published they are compared with the broker's:
  - a lead a power cut can explain (the energy published after the last ledger save, at most
    MAX_W x (save_s + 10 min)): the published total stays at the broker's until the ledger
    passes it; the energy of that lead was lost with the power, and HA's total ends up equal
    to the ledger's;
  - a larger lead (a wiped flash, another client's message): that module's totals are not
    published ("held", in the log and in health) until the ledger passes them or the user
    runs restore_totals (use the broker's totals, or the ledger's: HA then sees a reset).
Nothing here changes a ledger total except restore_totals with use "broker" (a gated command).
"""
from .. import log
from ..integrate import kwh
from .payload import parse_energy

MAX_W = 30000             # a power cut explains a lead of this power x (save_s + 10 min)
RETAINED_MAX = 512        # bytes of a retained energy message kept (ours are < 100)


def _below(c, floor):
    """A channel's [import, export] under a floor [import, export] in either of them."""
    return c[0] < floor[0] or c[1] < floor[1]


class Floors:
    def __init__(self, save_s):
        self.most = MAX_W * (save_s + 600) * 10**6 // 3600   # µWh a power cut explains
        self.retained = {}    # module id -> retained energy text, until checked
        self.held = {}        # key -> [[imp, exp]]: the broker's, far above the ledger
        self.pub_max = {}     # (key, ch) -> [import, export] µWh published so far

    def offer(self, mid, msg):
        """A retained energy message of module id mid, read at the first connect."""
        if len(msg) <= RETAINED_MAX:
            self.retained[mid] = bytes(msg)

    def publishable(self, m, chans):
        """The totals [[import µWh, export µWh]] of meter m about to be published: False
        when they are held below the broker's; else raised in place to the floors (a
        published total never goes back: the next increase absorbs it)."""
        self._check(m, chans)
        held = self.held.get(m.key)
        if held is not None:
            if any(ch < len(chans) and _below(chans[ch], h) for ch, h in enumerate(held)):
                return False
            del self.held[m.key]
            log.info("mqtt", "%s: the ledger passed the broker's totals: published again", m.id)
        for ch, c in enumerate(chans):
            top = self.pub_max.setdefault((m.key, ch), [0, 0])
            for k in (0, 1):
                if c[k] < top[k]:
                    c[k] = top[k]
                top[k] = c[k]
        return True

    def _check(self, m, chans):
        """The first time a module's totals are to be published: compare them with the
        broker's retained ones (its floor)."""
        text = self.retained.pop(m.id, None)
        if not text:
            return
        try:
            uid, imps, exps = parse_energy(text.decode())
        except (ValueError, UnicodeError):
            log.warning("mqtt", "%s: the retained energy total on the broker is not one of "
                        "ours: overwritten", m.id)
            return
        if uid != m.key:
            return                        # another module's totals (a swap): a new meter
        n = min(len(chans), len(imps), len(exps))
        lead = max([max(imps[c] - chans[c][0], exps[c] - chans[c][1]) for c in range(n)] or [0])
        if lead > self.most:
            self.held[m.key] = [[imps[c], exps[c]] for c in range(n)]
            log.error("mqtt", "%s: the broker holds totals up to %s kWh above the ledger's (a "
                      "wiped flash, or another client): its totals are not published until the "
                      "ledger passes them or the restore_totals command says which to use "
                      "(README, Faults and recovery)", m.id, kwh(lead))
            return
        for ch in range(n):
            top = self.pub_max.setdefault((m.key, ch), [0, 0])
            top[0], top[1] = max(top[0], imps[ch]), max(top[1], exps[ch])
        if lead > 0:
            log.warning("mqtt", "%s: the broker's total leads the ledger by %s kWh (published "
                        "after the last save, then a power cut): published as it is until the "
                        "ledger passes it", m.id, kwh(lead))

    def pending(self, meters, ledger):
        """A published total rests on a floor the ledger has not reached yet, or a module's
        floor is still unchecked (sleep mode reads the broker again at the next wake)."""
        if self.held or any(m.id in self.retained for m in meters):
            return True
        led = ledger.meters
        for (key, ch), top in self.pub_max.items():
            c = led.get(key, {}).get("ch", ())
            if ch < len(c) and _below(c[ch], top):
                return True
        return False

    def restore(self, m, use, led):
        """The restore_totals command: the broker's held totals into the ledger (use
        "broker"), or the ledger's published as they are (use "ledger": HA books a reset).
        False when there was nothing to decide (no hold; for "ledger", no floor above it)."""
        held = self.held.pop(m.key, None)
        above = [ch for ch in range(m.channels) if (m.key, ch) in self.pub_max and
                 _below(led.total(m.key, ch), self.pub_max[(m.key, ch)])]
        if use == "broker" and held:
            for ch, (i, e) in enumerate(held[:m.channels]):
                imp, exp = led.total(m.key, ch)
                led.add(m.key, ch, max(0, i - imp), max(0, e - exp))
        elif use == "ledger":
            for ch in range(m.channels):
                self.pub_max.pop((m.key, ch), None)
        done = held is not None or (use == "ledger" and bool(above))
        if done:
            log.warning("mqtt", "%s: restore_totals: the %s's totals are used", m.id, use)
        return done
