"""WiFi and MQTT through mqtt_as, with a bounded outage.

    link = Link(cfg, client_id, status_topic, outbox, on_up, on_message, on_bound,
                tasks=supervisor.group("link"))
    link.start()                         # connect, publish the outbox, stay connected
    await link.goodbye()                 # clean "offline" before a planned reset or sleep
    link.stop()                          # its tasks cancelled

Sleep mode (wakenet.py) connects with quick=True (mqtt_as's 5 s WiFi integrity check
is skipped), sends its records with send() under its own time budget, waits for flushed()
and says goodbye with "asleep".

mqtt_as owns WiFi and the reconnects; this module adds what an unattended node needs:
  - an exponential backoff with jitter before every connect attempt (mqtt_as on its own
    retries every second), the first connect at boot included;
  - the bound: after link.max_attempts failed attempts or link.max_offline_s offline,
    on_bound() is called once (the node saves its ledger and resets, or sleeps);
  - availability: the will is a retained "offline", every connect publishes a retained
    "online", goodbye() a clean "offline";
  - publishing from the outbox only: nothing else ever awaits the network (mqtt_as's
    publish() waits while offline).
The broker name is resolved by mqtt_as at the first connect of a boot, so a reset (the
bound's default action) resolves it again.
"""
import asyncio
import random
from time import ticks_diff, ticks_ms

from .. import log
from ..names import shown
from ..tasks import Tasks

CONNECT_TIMEOUT_S = 120     # one connect attempt: WiFi association (60 s on ESP32) + broker
GOODBYE_TIMEOUT_S = 5
INFLIGHT = 2                # publishing workers: outbox messages out at once, one per topic
                            # (one at a time, QoS 1 would wait for every PUBACK in turn; one
                            # per topic, as a reconnect may resend them in any order and the
                            # newest value of a topic must arrive last). Two keep the link
                            # busy at our rates; each more costs ~700 B of heap (32-bit)


def backoff_ms(attempt, lo_s, hi_s):
    """Delay before attempt n (1 = first retry): lo * 2**(n-1), at most hi, times a random
    factor 0.5..1.5 so a fleet of nodes does not reconnect in step after a broker restart."""
    if attempt <= 0:
        return 0
    base = min(hi_s * 1000, lo_s * 1000 << min(attempt - 1, 16))
    return base // 2 + (base * random.getrandbits(10) >> 10)


def utf8(text):
    """Text as UTF-8 bytes for mqtt_as, which sizes a packet with len(): characters for a
    str, so any non-ASCII character would make the packet short and corrupt the stream. A
    memoryview of the str is its UTF-8 bytes without a copy (a 1 KB discovery message was
    copied whole for each publish)."""
    return memoryview(text) if isinstance(text, str) else text


class Pieces:
    """A payload in pieces (texts or bytes), written one after the other: a discovery
    message is never joined into one string of up to 1 KB, the largest allocation of a
    connect (a fragmented heap has the room in pieces, not in one block). mqtt_as sizes the
    packet with len() and writes the payload with _as_write (below)."""

    def __init__(self, parts):
        self.parts = [memoryview(p) if isinstance(p, str) else p for p in parts]
        self.n = sum(len(p) for p in self.parts)

    def __len__(self):
        return self.n


def mqtt_config(cfg, client_id, status_topic):
    """The mqtt_as config dict for our config.json sections."""
    from mqtt_as import config as defaults
    m = cfg["mqtt"]
    c = dict(defaults)
    c.update({"server": m["host"], "port": m["port"], "client_id": utf8(client_id),
              "user": utf8(m["user"]), "password": utf8(m["password"]),
              "keepalive": m["keepalive"],
              "ssid": cfg["wifi"]["ssid"] or None, "wifi_pw": cfg["wifi"]["password"] or None,
              "queue_len": 16, "clean": True, "clean_init": True,
              "will": (utf8(status_topic), b"offline", True, 1)})
    if m["tls"]:
        c["ssl"] = True
        # do_handshake=False: the handshake runs inside mqtt_as's non-blocking writes and
        # reads, bounded by its response_time like any socket operation. ssl's own
        # handshake loops until the server answers: a server that accepts TCP and stays
        # silent blocked the event loop (no metering, the watchdog reset the board).
        params = {"server_hostname": m["host"], "do_handshake": False}
        if m["ca_file"]:
            import ssl
            try:
                with open(m["ca_file"], "rb") as f:
                    params["cadata"] = ca_der(f.read())
            except OSError as e:
                raise ValueError("mqtt.ca_file = %r cannot be read (%s)" % (m["ca_file"], e))
            params["cert_reqs"] = ssl.CERT_REQUIRED
        else:
            log.warning("link", "mqtt.tls without mqtt.ca_file: the broker is not authenticated")
        c["ssl_params"] = params
    return c


def ca_der(data):
    """The CA certificate as DER, which is what ssl.wrap_socket(cadata=) takes on every port
    (a PEM file, as CAs hand them out, is refused as 'invalid cert'). Of a PEM bundle the
    first certificate is used."""
    begin = data.find(b"-----BEGIN CERTIFICATE-----")
    if begin < 0:
        return data                       # DER already
    body = data[begin + 27:]
    end = body.find(b"-----END CERTIFICATE-----")
    if end < 0:
        raise ValueError("mqtt.ca_file: a PEM certificate without its END line")
    from binascii import a2b_base64
    try:
        return a2b_base64(b"".join(body[:end].split()))
    except ValueError:
        raise ValueError("mqtt.ca_file: the PEM certificate is not valid base64")


class Link:
    def __init__(self, cfg, client_id, status_topic, outbox, on_up=None, on_message=None,
                 on_bound=None, on_oversize=None, tasks=None):
        self.cfg = cfg["link"]
        self.tasks = tasks or Tasks("link")
        self.status_topic = status_topic
        self.outbox = outbox
        self.on_up = on_up
        self.on_message = on_message
        self.on_bound = on_bound
        self.on_oversize = on_oversize  # fn(topic, bytes, retained): a message not taken in
        self.subscriptions = []         # (topic, qos), renewed after every connect
        self.attempts = 0               # failed attempts in the current outage
        self.connects = 0
        self.outage_since = ticks_ms()  # offline since (boot counts as offline)
        self.online = False
        self.bound_hit = False
        self.published = 0
        self._mqtt_cfg = mqtt_config(cfg, client_id, status_topic)
        self.client = None
        self._ready = asyncio.Event()   # set once the birth is out, cleared on an outage
        self.quick = False              # first connect without the WiFi integrity check
        self._inflight = []             # topics of the outbox messages being published
        self._take = asyncio.Lock()     # one publishing worker takes from the outbox at a time
        self._leaving = False           # goodbye() said: the disconnect is ours
        self.oversize = 0               # inbound messages too long to take in, dropped
        self.unhandled = 0              # inbound messages whose handler failed
        self.lost_why = None            # why the last connection was lost, when known

    # ---- the connection -----------------------------------------------------------------------
    def _make_client(self):
        from .mqtt_client import Client
        return Client(self._mqtt_cfg, self)

    async def before_attempt(self):
        if not self.online and self.connects + self.attempts:
            d = backoff_ms(self.attempts, self.cfg["backoff_min_s"], self.cfg["backoff_max_s"])
            log.info("link", "connect attempt %d in %d ms", self.attempts + 1, d)
            await asyncio.sleep_ms(d)

    def failed(self, why):
        self.attempts += 1
        log.warning("link", "connect attempt %d failed (%s)", self.attempts, why)

    def start(self):
        """The link's tasks (tasks.py): the outage bound, the first connect, then the
        up/down events, the inbox and the publishing workers."""
        if self.client is None:
            self.client = self._make_client()
        self.tasks.start("bound", self._supervise, beat_s=10)
        self.tasks.start("connect", self._connect)

    def stop(self):
        self.tasks.stop()

    async def _connect(self):
        c = self.client
        while True:                                # the first connect, bounded and retried
            try:
                await asyncio.wait_for(c.connect(quick=self.quick), CONNECT_TIMEOUT_S)
                break
            except asyncio.TimeoutError:
                self.failed("no answer in %d s" % CONNECT_TIMEOUT_S)
                c.close()
            except OSError:
                pass                               # counted by the client hooks
        self.tasks.start("events", self._events)
        self.tasks.start("inbox", self._inbox)
        for i in range(INFLIGHT):
            self.tasks.start("publish%d" % i, self._worker)

    async def _events(self):
        """Up and down; restarted after a failure, it takes the state where it is."""
        c = self.client
        while True:
            if not self.online:
                await c.up.wait()
                c.up.clear()
                self._up()
            if not self._ready.is_set():           # the birth: subscriptions, "online"
                await self._birth(c)
                if self.on_up:
                    self.on_up()
                self._ready.set()
            await c.down.wait()
            c.down.clear()
            self._ready.clear()
            self._down()

    def _up(self):
        self.connects += 1
        self.online = True
        took = ticks_diff(ticks_ms(), self.outage_since)
        log.info("link", "connected to %s (connect #%d, after %d failed attempt(s), %d s "
                 "offline)", self._mqtt_cfg["server"], self.connects, self.attempts, took // 1000)
        self.attempts = 0
        self.bound_hit = False
        self.lost_why = None

    def _down(self):
        self.online = False
        self.outage_since = ticks_ms()
        if self._leaving:
            log.info("link", "disconnected")
        else:
            log.warning("link", "connection lost%s; mqtt_as reconnects",
                        " (%s)" % self.lost_why if self.lost_why else "")
        self.lost_why = None

    def oversize_dropped(self, topic, n, retained, most):
        """The client read a message longer than it takes in, and threw it away."""
        self.oversize += 1
        log.warning("link", "message of %d bytes on %s dropped (at most %d taken in)%s", n,
                    shown(topic) or "?", most, " (retained)" if retained else "")
        if self.on_oversize and topic:
            try:
                self.on_oversize(bytes(topic).decode(), n, retained)
            except Exception as e:  # noqa: BLE001 - never into mqtt_as's reader
                log.error("link", "oversize message on %s not handled: %r", shown(topic), e)

    def rx_dropped(self):
        """Inbound messages not handled: mqtt_as's queue overflowed (it drops the oldest),
        too long to take in, or their handler failed."""
        c = self.client
        return (c.queue.discards if c else 0) + self.oversize + self.unhandled

    async def _inbox(self):
        async for topic, msg, retained in self.client.queue:
            await self.outbox.room()
            if self.on_message:
                try:
                    self.on_message(topic.decode(), msg, retained)
                except Exception as e:  # noqa: BLE001 - a bad message never stops the link
                    self.unhandled += 1
                    log.error("link", "message on %s not handled: %r", shown(topic), e)

    async def _worker(self):
        """One of INFLIGHT: the next outbox message, once its topic is not being published.
        One worker at a time takes a message and waits for its topic (self._take, a FIFO
        lock): two waiting on one topic would race, and the newer message could go first.
        In order after that: mqtt_as sends under a lock that serves its waiters first come
        first, and a worker reaches it before it yields."""
        c = self.client
        box = self.outbox
        while True:
            async with self._take:
                await self._ready.wait()                    # the birth goes first
                msg = await box.get()
                while msg[0] in self._inflight:
                    await asyncio.sleep_ms(5)
                self._inflight.append(msg[0])
            try:
                topic, payload, retain, qos = msg
                await c.publish(utf8(topic), utf8(payload), retain, qos)   # waits offline
                self.published += 1
            finally:
                self._inflight.remove(msg[0])

    async def _birth(self, c):
        """The subscriptions and "online" at once: their acks come back together, one round
        trip instead of one each (a sleep-mode wake spent 4 of them here). Its requests are
        its own: cancelled with it, and when one fails."""
        jobs = [asyncio.create_task(c.subscribe(utf8(t), q)) for t, q in self.subscriptions]
        jobs.append(asyncio.create_task(c.publish(utf8(self.status_topic), b"online", True, 1)))
        try:
            for j in jobs:
                await j
        except BaseException:
            for j in jobs:
                j.cancel()
            raise

    def pending(self, topic):
        """A message on topic is queued or being published."""
        return topic in self.outbox.values or topic in self._inflight

    async def ready(self):
        """Until connected with the birth out."""
        await self._ready.wait()

    async def send(self, topic, payload, retain=False, qos=1):
        """Publish now, not through the outbox: returns once the broker has it (QoS 1:
        PUBACK). It waits while offline, so only a caller with its own time bound uses it
        (a sleep-mode wake)."""
        await self._ready.wait()
        await self.client.publish(utf8(topic), utf8(payload), retain, qos)
        self.published += 1

    async def flushed(self):
        """Until the outbox is empty and its last message is out."""
        while len(self.outbox) or self._inflight:
            await asyncio.sleep_ms(10)

    async def _supervise(self):
        """The outage bound, checked every second."""
        cfg = self.cfg
        while True:
            await asyncio.sleep(1)
            self.tasks.beat("bound")
            if self.online or self.bound_hit:
                continue
            off_s = ticks_diff(ticks_ms(), self.outage_since) // 1000
            why = None
            if cfg["max_attempts"] and self.attempts >= cfg["max_attempts"]:
                why = "%d failed connect attempts" % self.attempts
            elif cfg["max_offline_s"] and off_s >= cfg["max_offline_s"]:
                why = "%d s offline" % off_s
            if why:
                self.bound_hit = True
                log.error("link", "outage bound reached: %s; action: %s", why, cfg["action"])
                if self.on_bound:
                    await self.on_bound(why)

    def subscribe(self, topic, qos=1):
        self.subscriptions.append((topic, qos))

    async def goodbye(self, status="offline"):
        """A clean status ("offline"; sleep mode: "asleep") and disconnect before a planned
        reset or sleep (bounded)."""
        c = self.client
        if c is None or not self.online:
            return False
        self._leaving = True
        try:
            await asyncio.wait_for(c.publish(utf8(self.status_topic), utf8(status), True, 1),
                                   GOODBYE_TIMEOUT_S)
            await asyncio.wait_for(c.disconnect(), GOODBYE_TIMEOUT_S)
            return True
        except (OSError, asyncio.TimeoutError):
            return False
