"""A local HTTP server for the update tests: CPython's http.server, serving files from a
dict, with the faults a download meets.

    srv = OtaServer({"/good.rbota": data})
    srv.url("/good.rbota")               # http://127.0.0.1:<port>/good.rbota
    srv.cut["/good.rbota"] = 5000        # send 5000 bytes of the body, then close
    srv.rate = 20000                     # bytes per second (0: as fast as possible)
    srv.wait_sent("/good.rbota", 40000)  # until that much of it went out
    srv.stop()
"""
import http.server
import threading
import time


class OtaServer:
    def __init__(self, files):
        self.files = dict(files)
        self.cut = {}
        self.rate = 0
        self.sent = {}
        self.done = {}                  # path -> time.monotonic() of its last byte
        self.requests = []
        self._cv = threading.Condition()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                owner.requests.append(self.path)
                data = owner.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                limit = owner.cut.get(self.path, len(data))
                pos = 0
                try:
                    while pos < limit:
                        n = min(4096, limit - pos)
                        self.wfile.write(data[pos:pos + n])
                        self.wfile.flush()
                        pos += n
                        with owner._cv:
                            owner.sent[self.path] = pos
                            owner._cv.notify_all()
                        if owner.rate:
                            time.sleep(n / owner.rate)
                except OSError:
                    return
                with owner._cv:
                    if pos == len(data):
                        owner.done[self.path] = time.monotonic()
                    owner._cv.notify_all()
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def wait_sent(self, path, n, timeout=60):
        deadline = time.monotonic() + timeout
        with self._cv:
            while self.sent.get(path, 0) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: %d of %d bytes sent" % (
                        path, self.sent.get(path, 0), n))
                self._cv.wait(left)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
