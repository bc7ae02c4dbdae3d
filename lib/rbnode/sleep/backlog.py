"""Store and forward for sleep mode: records the network did not take, kept on flash.

    log = Backlog("backlog.jsonl", 500)
    for topic, payload in log.records():   # oldest first, read line by line
        ...publish; stop at the first one that does not go...
    log.consume(n)                         # the first n were delivered
    log.append([(topic, payload)])         # records of this wake that were not

One record per line, "<topic> <payload>" (topics have no spaces). The file is read line by
line (a full backlog is larger than a chip's free RAM) and touched only when there is
something to keep or to drop: a wake that delivers everything writes nothing. An append torn
by a power cut leaves a partial last line, which is skipped and counted; consume() copies
the rest to a temporary file and renames it. Bounded: beyond `size` records the oldest are
dropped (counted), so a node that never gets its network back does not fill its flash.
"""
import json
import os

from .. import log


class Backlog:
    def __init__(self, path="backlog.jsonl", size=500):
        self.path = path
        self.size = size
        self._count = None      # records on flash (None: not counted yet)
        self._torn = False      # the file ends in a partial line
        self._bad_lines = 0     # in the last pass over the file
        self.dropped = 0        # dropped for room, or unreadable, since boot
        self.written = 0        # bytes written to flash since boot (wear)

    def records(self):
        """(topic, payload) of every whole record on flash, oldest first."""
        self._bad_lines = 0
        try:
            f = open(self.path)
        except OSError:
            return
        with f:
            for line in f:
                if line == "\n":
                    continue
                if not line.endswith("\n"):          # torn by a power cut mid-append
                    self._torn = True
                    self._bad_lines += 1
                    return
                topic, sep, payload = line[:-1].partition(" ")
                try:
                    if not (sep and topic and isinstance(json.loads(payload), dict)):
                        raise ValueError
                except ValueError:
                    self._bad_lines += 1
                    continue
                yield topic, payload

    def __len__(self):
        if self._count is None:          # once per boot: count, and report what is unreadable
            n = 0
            for _ in self.records():
                n += 1
            self._count = n
            if self._bad_lines:
                self.dropped += self._bad_lines
                log.warning("backlog", "%d unreadable line(s) in %s (a power cut while "
                            "writing): skipped, those records are lost", self._bad_lines,
                            self.path)
        return self._count

    def append(self, records):
        """Keep records [(topic, payload)] after those on flash; beyond size the oldest go."""
        if not records:
            return
        if not self.size:                        # store and forward is off
            self.dropped += len(records)
            return
        n = len(self)
        with open(self.path, "a") as f:
            if self._torn:                          # end the torn line: one bad line
                self.written += f.write("\n")
                self._torn = False
            for topic, payload in records:
                self.written += f.write("%s %s\n" % (topic, payload))
        self._count = n + len(records)
        over = self._count - self.size
        if over > 0:
            log.warning("backlog", "full (%d records): the oldest %d dropped", self.size, over)
            self.consume(over)
            self.dropped += over

    def consume(self, n):
        """The first n records are gone (delivered, or dropped for room)."""
        if n <= 0:
            return
        left = len(self) - n
        if left <= 0:
            try:
                os.remove(self.path)
            except OSError:
                pass
            self._count = 0
            return
        tmp = self.path + ".new"
        kept = 0
        with open(tmp, "w") as out:
            for i, (topic, payload) in enumerate(self.records()):
                if i >= n:
                    self.written += out.write("%s %s\n" % (topic, payload))
                    kept += 1
        os.rename(tmp, self.path)
        self._count = kept
