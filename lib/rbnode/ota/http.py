"""HTTP(S) GET as a stream, for the update's download (update.py): the body is read in
pieces as the installer writes them, never held whole.

    body = await get("https://host/rbnode-0.2.0.rbota", ca=der_or_None)
    body.length                    # Content-Length, or None (chunked, or until the close)
    data = await body.read(1024)   # b"" at the end; readline(); close()

HTTP/1.1 with `Connection: close`; a body with Content-Length, chunked, or up to the close;
up to MAX_REDIRECTS redirects (301 302 303 307 308, absolute or relative Location). Every
wait is bounded by TIMEOUT_S. HTTPS: the TLS handshake runs inside the non-blocking reads
and writes (a server that accepts and stays silent cannot block the event loop); the
server's certificate is checked against `ca` when given. Every failure is an HttpError
that names it.
"""
import asyncio

TIMEOUT_S = 20
MAX_REDIRECTS = 5
MAX_HEADER = 1024            # bytes of one header line
MAX_HEADERS = 64


class HttpError(Exception):
    pass


def split_url(url):
    """(https, host, port, path) of an http:// or https:// URL."""
    if url.startswith("http://"):
        tls, rest = False, url[7:]
    elif url.startswith("https://"):
        tls, rest = True, url[8:]
    else:
        raise HttpError("%s: only http:// and https:// URLs" % url[:64])
    host, slash, path = rest.partition("/")
    path = "/" + path if slash else "/"
    if "@" in host:
        raise HttpError("a URL with a user name or password is not supported")
    port = 443 if tls else 80
    if host.startswith("["):
        raise HttpError("an IPv6 address in a URL is not supported")
    if ":" in host:
        host, _, p = host.partition(":")
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise HttpError("%s: a bad port" % url[:64])
        port = int(p)
    if not host or any(c in host for c in " \t\r\n") or any(c in path for c in " \r\n"):
        raise HttpError("%s: not a usable URL" % url[:64])
    return tls, host, port, path


async def _wait(aw, what):
    try:
        return await asyncio.wait_for(aw, TIMEOUT_S)
    except asyncio.TimeoutError:
        raise HttpError("%s: no answer in %d s" % (what, TIMEOUT_S))


class Body:
    def __init__(self, reader, writer, headers):
        self._r = reader
        self._w = writer
        te = headers.get("transfer-encoding", "")
        self.chunked = "chunked" in te.lower()
        cl = headers.get("content-length")
        self.length = None
        if cl is not None and not self.chunked:
            if not cl.strip().isdigit():
                raise HttpError("a bad Content-Length %r" % cl[:32])
            self.length = int(cl)
        self._left = 0 if self.chunked else self.length   # bytes left (of the chunk)
        self._started = False
        self._ended = False
        self.received = 0
        self._pending = b""               # what readline() read past its line

    async def _next_chunk(self):
        line = await _wait(self._r.readline(), "the download")
        if not line:
            raise HttpError("the connection closed inside a chunked body (%d bytes received)"
                            % self.received)
        size = line.split(b";")[0].strip()
        try:
            self._left = int(size, 16)
        except ValueError:
            raise HttpError("a bad chunk size line %r" % line[:32])
        if self._left == 0:
            while (await _wait(self._r.readline(), "the download")).strip():
                pass                      # trailers
            self._ended = True

    async def read(self, n):
        """Up to n bytes of the body; b"" at its end. A body cut short raises HttpError."""
        if self._pending:
            data, self._pending = self._pending[:n], self._pending[n:]
            return data
        if self._ended:
            return b""
        if self.chunked:
            if self._left == 0:
                if self._started:
                    await _wait(self._r.readline(), "the download")    # the CRLF after a chunk
                self._started = True
                await self._next_chunk()
                if self._ended:
                    return b""
            n = min(n, self._left)
        elif self._left is not None:
            if self._left == 0:
                self._ended = True
                return b""
            n = min(n, self._left)
        data = await _wait(self._r.read(n), "the download")
        if not data:
            if self.chunked or self._left is not None:
                raise HttpError("the connection closed before the end of the body (%d bytes "
                                "received%s)" % (self.received, "" if self.length is None else
                                                 " of %d" % self.length))
            self._ended = True
            return b""
        self.received += len(data)
        if self._left is not None:
            self._left -= len(data)
            if self._left == 0 and not self.chunked:
                self._ended = True
        return data

    async def readline(self, limit=512):
        """A line of the body, with its \\n (b"" at the end); longer than limit: HttpError."""
        line = b""
        while True:
            data = await self.read(64)
            if not data:
                return line
            i = data.find(b"\n")
            if i >= 0:
                line += data[:i + 1]
                self._pending = data[i + 1:] + self._pending
                return line
            line += data
            if len(line) > limit:
                raise HttpError("a line longer than %d bytes in the body" % limit)

    async def readexactly(self, n):
        out = b""
        while len(out) < n:
            data = await self.read(n - len(out))
            if not data:
                raise HttpError("the body ended %d bytes early" % (n - len(out)))
            out += data
        return out

    def close(self):
        try:
            self._w.close()
        except OSError:
            pass


async def _request(tls, host, port, path, ca, agent):
    ctx = None
    if tls:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca:
            ctx.load_verify_locations(cadata=ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.verify_mode = ssl.CERT_NONE
    try:
        r, w = await _wait(asyncio.open_connection(host, port, ssl=ctx) if ctx else
                           asyncio.open_connection(host, port), "connecting to %s" % host)
    except OSError as e:
        raise HttpError("cannot connect to %s:%d (%s)" % (host, port, e))
    try:                   # a refused connection shows at the first write (non-blocking)
        hp = host if port == (443 if tls else 80) else "%s:%d" % (host, port)
        w.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nConnection: close\r\n\r\n"
                % (path.encode(), hp.encode(), agent.encode()))
        await _wait(w.drain(), "sending the request")
    except OSError as e:
        w.close()
        raise HttpError("cannot connect to %s:%d (%s)" % (host, port, e))
    except ValueError as e:         # ssl: the handshake failed (the certificate, mostly)
        w.close()
        raise HttpError("TLS with %s:%d failed: %s%s" % (
            host, port, str(e).strip(), " (is ota.ca_file the CA that signed the server's "
            "certificate?)" if ca else ""))
    try:
        status = await _wait(r.readline(), "the server's answer")
        parts = status.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise HttpError("not an HTTP answer from %s:%d" % (host, port) if status else
                            "%s:%d closed the connection without an answer" % (host, port))
        code = int(parts[1])
        reason = parts[2].strip().decode() if len(parts) > 2 else ""
        headers = {}
        for _ in range(MAX_HEADERS):
            line = await _wait(r.readline(), "the server's headers")
            if len(line) > MAX_HEADER:
                raise HttpError("a header longer than %d bytes" % MAX_HEADER)
            line = line.strip()
            if not line:
                break
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        else:
            raise HttpError("more than %d headers" % MAX_HEADERS)
    except (OSError, ValueError) as e:       # UnicodeError, and ssl's errors, are ValueErrors
        w.close()
        raise HttpError("%s:%d: %s" % (host, port, str(e).strip() or repr(e)))
    except HttpError:
        w.close()
        raise
    return code, reason, headers, r, w


async def get(url, ca=None, agent="rbnode"):
    """The body of url (200), following redirects."""
    for _ in range(MAX_REDIRECTS + 1):
        tls, host, port, path = split_url(url)
        code, reason, headers, r, w = await _request(tls, host, port, path, ca, agent)
        if code in (301, 302, 303, 307, 308):
            w.close()
            loc = headers.get("location")
            if not loc:
                raise HttpError("HTTP %d without a Location" % code)
            if loc.startswith("/"):
                loc = "%s://%s:%d%s" % ("https" if tls else "http", host, port, loc)
            url = loc
            continue
        if code != 200:
            w.close()
            raise HttpError("HTTP %d %s" % (code, reason[:40]))
        try:
            return Body(r, w, headers)
        except HttpError:
            w.close()
            raise
    raise HttpError("more than %d redirects" % MAX_REDIRECTS)
