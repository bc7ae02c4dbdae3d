"""The strict part of reading config.json, the same on the node and in the checker (pure).

    strict_problem(text) -> None, or one line naming the problem and where it is

MicroPython's JSON reader accepts a trailing comma and keeps the last of two equal keys;
CPython's refuses the first and also keeps the last. A file the node took and the checker
refused (or where one of two "period_s" silently won) is a file nobody can reason about:
both now refuse a byte order mark, a trailing comma and a key given twice in one object,
naming the line. Everything else (what is valid JSON) is left to json.loads.
"""


class _Scan:
    def __init__(self, text):
        self.t = text
        self.i = 0
        self.n = len(text)

    def line(self, i=None):
        return self.t.count("\n", 0, self.i if i is None else i) + 1

    def ws(self):
        t, i = self.t, self.i
        while i < self.n and t[i] in " \t\r\n":
            i += 1
        self.i = i
        return t[i] if i < self.n else ""

    def string(self):
        t, i = self.t, self.i + 1
        while i < self.n and t[i] != '"':
            i += 2 if t[i] == "\\" else 1
        s = t[self.i + 1:i]
        self.i = i + 1
        return s

    def value(self, depth=0):
        c = self.ws()
        if depth > 32:
            raise ValueError("line %d: nested more than 32 deep" % self.line())
        if c == "{":
            return self.container("}", depth, keys={})
        if c == "[":
            return self.container("]", depth)
        if c == '"':
            self.string()
            return None
        while self.i < self.n and self.t[self.i] not in ",]} \t\r\n":
            self.i += 1                  # a number or a literal: json.loads judges it
        return None

    def container(self, close, depth, keys=None):
        self.i += 1
        first = True
        while True:
            c = self.ws()
            if c == close:
                self.i += 1
                return None
            if not first:
                if c != ",":
                    return None          # not JSON: json.loads says where
                at = self.i
                self.i += 1
                if self.ws() == close:
                    raise ValueError("line %d: a trailing comma before %s (JSON allows none)"
                                     % (self.line(at), close))
            first = False
            if keys is not None:
                if self.ws() != '"':
                    return None
                at = self.i
                k = self.string()
                if k in keys:
                    raise ValueError('line %d: key "%s" given twice in one object (also on '
                                     'line %d): only one can count' % (self.line(at), k[:40],
                                                                      keys[k]))
                keys[k] = self.line(at)
                if self.ws() != ":":
                    return None
                self.i += 1
            self.value(depth + 1)
            if self.i >= self.n:
                return None


def strict_problem(text):
    if text[:1] == "\ufeff":
        return ("the file starts with a byte order mark (BOM): save it as UTF-8 without BOM")
    try:
        _Scan(text).value()
    except ValueError as e:
        return str(e)
    return None
