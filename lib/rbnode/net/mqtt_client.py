"""mqtt_as's MQTTClient as the link needs it (link.py makes one; nothing else uses it).

mqtt_as is a dependency, not our code: these overrides change the least that makes it
hold up against what a broker and a network really do, each with the reason:
  - inbound bounded before it is allocated (_as_read), oversize messages counted;
  - a payload may come in pieces (Pieces: _as_write), never joined;
  - its reader takes waiting messages in bursts (_handle_msg), and an ack is waited for as
    long as data keeps arriving (_await_pid): an inbound flood no longer drops the link;
  - a closed socket is a connection loss, not an AssertionError (wait_msg);
  - a disconnect waits for the broker to close the connection, not a fixed 100 ms
    (disconnect);
  - every attempt goes through the link's backoff, and a failed attempt is counted and
    explained (wifi_connect, connect); every loss records why (_lost).
"""
import asyncio
import socket as _socket
from time import ticks_diff, ticks_ms

import mqtt_as
from mqtt_as import MQTTClient

from .link import Pieces

MAX_IN = 1024               # longest topic or payload taken in (ours: commands <= 512 bytes,
                            # retained totals < 100): a longer one is read and dropped
DRAIN = 256                 # the piece an oversize message is thrown away in
READ_BURST = 16             # inbound messages read per turn when they are waiting
ACK_POLL_MS = 20
DISCONNECT_MS = 100         # longest wait for the broker to close after our DISCONNECT


class _Sockets:
    """mqtt_as's `socket` module with TCP_NODELAY on the sockets it makes. mqtt_as writes a
    packet in pieces (header, topic, payload): with Nagle's algorithm each piece after the
    first waits for the ACK of the one before, which a broker's host delays (Linux: 40 ms),
    so every publish and subscribe took about 100 ms on the wire; lwIP on the chips does
    the same. IPPROTO_TCP 6 and TCP_NODELAY 1 on Linux and lwIP (the unix port has no
    names for them)."""

    def __getattr__(self, name):
        return getattr(_socket, name)

    @staticmethod
    def socket(*args):
        s = _socket.socket(*args)
        if not args:                        # the TCP stream (mqtt_as's only socket())
            try:
                s.setsockopt(6, 1, 1)
            except (OSError, TypeError):    # a stack without the option: Nagle, as before
                pass
        return s


mqtt_as.socket = _Sockets()


class Client(MQTTClient):
    def __init__(self, config, link):
        super().__init__(config)
        self.link = link
        self._oversize = 0
        put = self.queue.put

        def deliver(topic, msg, retained):
            n, self._oversize = self._oversize, 0
            if n:
                link.oversize_dropped(topic, n, retained, MAX_IN)
            else:
                put(topic, msg, retained)
        self._cb = deliver

    def _lost(self, why):
        if self._isconnected and not self.link.lost_why:
            self.link.lost_why = why

    async def _as_write(self, data, length=0, sock=None):
        try:
            if isinstance(data, Pieces):
                for p in data.parts:
                    await super()._as_write(p, 0, sock)
                return None
            return await super()._as_write(data, length, sock)
        except OSError as e:
            self._lost("writing: %s" % (e,))
            raise

    async def _as_read(self, n, sock=None):
        # Inbound bounded before it is allocated: mqtt_as reads a message's topic
        # and payload with one read each, into a buffer that grows to fit and keeps
        # its size (a 1 MB message: MemoryError and a dropped link). A read longer
        # than MAX_IN is consumed in small pieces and thrown away; the message is
        # counted, never delivered (and the connection stays up, so a retained
        # monster cannot cause a reconnect loop).
        try:
            if n <= MAX_IN:
                return await super()._as_read(n, sock)
            left = n
            while left:
                k = min(left, DRAIN)
                await super()._as_read(k, sock)
                left -= k
        except OSError as e:
            self._lost("reading: %s" % (e,))
            raise
        self._oversize = n
        return self._mvbuf[:0]

    async def _handle_msg(self):
        # mqtt_as's reader, taking up to READ_BURST waiting messages per turn of
        # the lock instead of one per 5 ms: a broker that queued a flood for us
        # sends it ahead of the PUBACKs of our own publishes, which mqtt_as gives
        # response_time (10 s) before it drops the connection; reading one message
        # per 5 ms (often 15 on a busy host) a 2000-command flood cost the link.
        try:
            while self.isconnected():
                async with self.lock:
                    for _ in range(READ_BURST):
                        seen = self.last_rx
                        await self.wait_msg()
                        if self.last_rx == seen:
                            break                   # nothing (more) waiting
                await asyncio.sleep_ms(5)
        except OSError as e:
            self._lost("reading: %s" % (e,))
        self._reconnect()

    async def _await_pid(self, pid):
        # An ack (PUBACK, SUBACK, UNSUBACK) comes after everything the broker queued
        # for us before it: TCP is in order, and under an inbound flood that is
        # seconds of messages. mqtt_as gives it response_time from the request
        # and then drops the connection (a 2000-command flood did, and the broker
        # discarded the rest with the session). Here the clock runs from the last
        # byte received: while data keeps arriving the broker is alive and the ack
        # on its way; response_time of silence is a failure as before. Polled
        # every ACK_POLL_MS (mqtt_as: 100 ms, so at most 10 QoS 1 messages a
        # second went out per topic).
        t = ticks_ms()
        while pid in self.rcv_pids:
            last = self.last_rx if ticks_diff(self.last_rx, t) > 0 else t
            if ticks_diff(ticks_ms(), last) > self._response_time:
                self._lost("no ack and no data from the broker for %d s"
                           % (self._response_time // 1000))
                return False
            if not self.isconnected():
                return False
            await asyncio.sleep_ms(ACK_POLL_MS)
        return True

    async def disconnect(self):
        # mqtt_as writes DISCONNECT and then sleeps 100 ms so that it leaves before the
        # socket is closed. The broker closes the connection once it has the DISCONNECT
        # (MQTT 3.1.1, 3.14.4): that end-of-file is the confirmation, usually within one
        # round trip; at most DISCONNECT_MS are waited, as before. A sleep-mode wake
        # disconnects every time: 100 ms of each wake went here.
        if self._sock is None:
            return await super().disconnect()
        await self._kill_tasks(False)
        try:
            async with self.lock:
                self._sock.write(b"\xe0\0")
                t = ticks_ms()
                while ticks_diff(ticks_ms(), t) < DISCONNECT_MS:
                    if self._sock.read(16) == b"":      # None: nothing yet (non-blocking)
                        break
                    await asyncio.sleep_ms(5)
        except OSError:
            pass
        self._close()
        self._has_connected = False

    async def wait_msg(self):
        # mqtt_as asserts on a read of b"" (the broker closed the socket) and on
        # malformed acks: an AssertionError its reader task does not catch (a
        # traceback per broker restart, and the reconnect waits for the keepalive).
        # As an OSError it is the connection loss it is: one log line, reconnect.
        try:
            await super().wait_msg()
        except AssertionError as e:
            why = "broker closed the connection" if "Empty" in str(e) \
                else "bad packet from the broker (%s)" % e
            self._lost(why)
            raise OSError(-1, why)

    async def wifi_connect(self, quick=False):
        # Every attempt (the first connect and mqtt_as's reconnects) starts here.
        await self.link.before_attempt()
        if self.link.attempts and not self.link.connects and self._sta_if.isconnected():
            return      # a retry of the first connect: the broker failed, not WiFi
            # (mqtt_as would associate again and wait out its 5 s check each time)
        try:
            await super().wifi_connect(quick)
        except OSError as e:
            self.link.failed("WiFi: %s" % (e,))
            raise

    async def connect(self, *, quick=False):
        try:
            await super().connect(quick=quick)
        except OSError as e:
            self.link.failed("broker: %s" % (e,))
            raise
        except ValueError as e:
            # ssl refused the broker's certificate ("invalid cert"): an attempt
            # that failed like any other (mqtt_as retries only on OSError)
            self.link.failed("broker TLS: %s (is mqtt.ca_file the CA that signed the "
                             "broker's certificate, and mqtt.host a name in it?)"
                             % " ".join(str(e).split()))
            raise OSError(e)
