"""Text that crosses the wire: display names, ids, topic prefixes (pure; node and checker).

    display_problem("Küche", 48)     -> None, or what is wrong with a display name
    topic_problem("rbnode", 64)      -> None, or what is wrong with a topic prefix
    slug("Salle de bain", "-")       -> "salle-de-bain": an id derived from a display name
    shown(b"...", 60)                -> received bytes as they can go into a log line

Display names (node, module and channel names shown in Home Assistant) may be any text
within a byte bound; topics and unique ids use ids ([a-z0-9_-]), so a name can change
without changing an entity's identity. Bounds are UTF-8 bytes, what MQTT carries.
"""

# Characters a name or topic must not hold, besides C0, DEL and C1 controls: every Unicode
# space and the invisible format characters (zero width, direction marks, BOM, soft hyphen).
INVISIBLE = "\u00a0\u00ad\u034f\u061c\u1680\u180e\u2028\u2029\u202f\u205f\u3000\ufeff"
INVISIBLE_RANGES = ((0x2000, 0x200f), (0x202a, 0x202e), (0x2060, 0x206f), (0xfff0, 0xfffb),
                    (0xd800, 0xdfff))     # and lone surrogates: no text at all
# Latin letters with diacritics -> ASCII, for ids derived from names ("Küche" -> "kuche"):
# FOLD_FROM[i] -> FOLD_TO[i], both cases (MicroPython's lower() is ASCII only); strings, so a
# frozen image keeps them in flash
FOLD_FROM = ("àáâãäåāăąÀÁÂÃÄÅĀĂĄçćĉċčÇĆĈĊČďĎèéêëēĕėęěÈÉÊËĒĔĖĘĚĝğġģĜĞĠĢĥħĤĦìíîïĩīĭįıÌÍÎÏĨĪĬĮİ"
             "ĵĴķĶĺļľŀĹĻĽĿñńņňÑŃŅŇòóôõöōŏőøÒÓÔÕÖŌŎŐØŕŗřŔŖŘśŝşšșŚŜŞŠȘţťŧțŢŤŦȚùúûüũūŭůűų"
             "ÙÚÛÜŨŪŬŮŰŲŵŴýÿŷÝŸŶźżžŹŻŽđĐðÐłŁ")
FOLD_TO = ("aaaaaaaaaaaaaaaaaaccccccccccddeeeeeeeeeeeeeeeeeegggggggghhhhiiiiiiiiiiiiiiiiii"
           "jjkkllllllllnnnnnnnnoooooooooooooooooorrrrrrssssssssssttttttttuuuuuuuuuu"
           "uuuuuuuuuuwwyyyyyyzzzzzzddddll")
FOLD_MORE = {"ß": "ss", "ẞ": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "þ": "th",
             "Þ": "th"}


def _invisible(c):
    o = ord(c)
    if o < 0x20 or 0x7f <= o <= 0x9f or c in INVISIBLE:
        return True
    for lo, hi in INVISIBLE_RANGES:
        if lo <= o <= hi:
            return True
    return False


def utf8_bytes(s):
    """UTF-8 bytes, or -1 for text holding a lone surrogate (a JSON "\\ud800" escape:
    CPython's str cannot encode it, MicroPython's holds it as bytes no decoder accepts)."""
    for c in s:
        if 0xd800 <= ord(c) <= 0xdfff:
            return -1
    return len(s.encode())


def _code(c):
    return "U+%04X" % ord(c)


def size_problem(s, most):
    """Text that is not valid Unicode or longer than `most` UTF-8 bytes: what is wrong."""
    n = utf8_bytes(s)
    if n < 0:
        return "not valid Unicode text (a lone surrogate escape)"
    if n > most:
        return "too long (%d bytes in UTF-8, at most %d)" % (n, most)
    return None


def display_problem(s, most):
    """What is wrong with a display name, or None: text of at most `most` UTF-8 bytes,
    without control or invisible characters, not starting or ending with a space."""
    why = size_problem(s, most)
    if why:
        return why
    for c in s:
        if _invisible(c):
            return "holds the control or invisible character %s" % _code(c)
    if s != s.strip(" "):
        return "starts or ends with a space"
    return None


def topic_problem(s, most):
    """What is wrong with an MQTT topic prefix, or None. Not empty, at most `most` UTF-8
    bytes, no wildcard (+ #), no NUL, control, space or invisible character, no leading $
    (brokers keep $-topics for themselves: nothing we publish there would arrive), no empty
    level (a leading, trailing or double /)."""
    if not s:
        return "must not be empty"
    why = size_problem(s, most)
    if why:
        return why
    for c in s:
        if c in "+#":
            return "holds the MQTT wildcard %r" % c
        if c == " " or _invisible(c):
            return "holds the space, control or invisible character %s" % _code(c)
    if s[0] == "$":
        return "starts with $ (topics the broker keeps for itself)"
    if s[0] == "/" or s[-1] == "/" or "//" in s:
        return "has an empty level (a leading, trailing or double /)"
    return None


def slug(text, sep="_", most=24):
    """An id from a display name: lower case a-z 0-9, Latin diacritics folded ("ä" -> "a"),
    every other run of characters one `sep`; "" when nothing is left (a name in another
    script: the caller picks a fallback)."""
    out = []
    gap = False
    for c in text.lower():
        if c > "\x7f":
            i = FOLD_FROM.find(c)
            c = FOLD_TO[i] if i >= 0 else FOLD_MORE.get(c, c)
        if all("a" <= x <= "z" or "0" <= x <= "9" for x in c):
            if gap and out:
                out.append(sep)
            out.append(c)
            gap = False
        else:
            gap = True
    return "".join(out)[:most].strip(sep)


def clean(text):
    """Text that encodes as valid UTF-8: a lone surrogate (from a JSON "\\ud800" escape in
    something received) becomes U+FFFD. MicroPython's json.dumps would write its bytes as
    they are, and no receiver decodes them."""
    if utf8_bytes(text) >= 0:
        return text
    return "".join("\ufffd" if 0xd800 <= ord(c) <= 0xdfff else c for c in text)


def quoted(text):
    """Text in double quotes for a message: any script as it is, quotes, backslashes and
    control or invisible characters escaped (CPython's json.dumps would escape every
    non-ASCII character, MicroPython's none: the checker and the node say the same)."""
    return '"%s"' % _escaped(text, '"\\')


def _escaped(text, also=""):
    """Control and invisible characters as \\uXXXX, `also` behind a backslash."""
    return "".join("\\" + c if c in also else "\\u%04x" % ord(c) if _invisible(c) else c
                   for c in text)


def shown(data, most=60):
    """Received bytes for a log line: the text when it is UTF-8, control characters and
    anything else as escapes, at most `most` characters."""
    data = bytes(data[:most * 4])
    try:
        text = data.decode()
    except UnicodeError:
        return "".join(chr(b) if 0x20 <= b < 0x7f else "\\x%02x" % b for b in data)[:most]
    return _escaped(text)[:most]
