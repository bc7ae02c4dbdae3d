"""The wall clock the node can trust (issue 21): Unix time in ms, whether it is valid, and
the local time zone (tz.py) of config `time`.

    clock = Clock(board, cfg["time"], servers, node.uptime_ms, board.epoch_ms)
    clock.valid              # an NTP server answered (or: no servers, and the board's clock
                             # reads 2025 or later)
    clock.now_ms()           # Unix ms: the last sync plus the time since, on the node's own
                             # monotonic count (a jump of the board's clock does not move it)
    await clock.run(online)  # sync when online() and the time is invalid or resync_h is due
    clock.on_change = fn     # called when the time becomes valid or a sync moves it by
                             # JUMP_MS or more (the node latches the period: calendar.py)

Servers are asked in turn; the first good answer counts (sntp.py says which answer is
good). After a failure the next try is in RETRY_S, doubling up to an hour. On a chip the
RTC is set at each sync, so it keeps the time across deep sleep and soft resets.
"""
import asyncio

from . import log
from .tz import Zone

VALID_FROM_MS = 1735689600000     # 2025-01-01: a board clock before this was never set
JUMP_MS = 1000
RETRY_S = 10


def server(text):
    """"host" or "host:port" (config time.ntp) -> (host, port)."""
    host, _, port = text.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else (text, 123)


class Clock:
    def __init__(self, board, tcfg, servers, mono_ms, board_ms):
        """board_ms: the board's clock (board.epoch_ms; sleep mode: board.rtc_ms, the RTC
        that keeps counting through deep sleep), read once here."""
        self.board = board
        self.zone = Zone(tcfg["tz"])
        self.servers = list(servers)
        self.resync_ms = tcfg["resync_h"] * 3600000
        self.mono = mono_ms
        self.on_change = None
        self._base = board_ms() - mono_ms()           # wall ms = mono + base
        self.valid = not self.servers and self.now_ms() >= VALID_FROM_MS
        self.source = "board" if self.valid else None
        self.syncs = 0
        self.failures = 0          # sync rounds in a row in which no server answered
        self.jumps = 0
        self.error = None          # why the last round failed
        if not self.valid and not self.servers:
            log.warning("clock", "no NTP server (time.ntp) and the board's clock is not set: "
                        "the time stays invalid (day and month totals are not dated, "
                        "everything goes to the default tariff)")

    def now_ms(self):
        return self.mono() + self._base

    def now(self):
        return self.now_ms() // 1000

    def state(self):
        """For the health message: "ntp", "board" or "invalid"."""
        return self.source if self.valid else "invalid"

    def trust(self, source):
        """The board's clock is valid as it is (sleep mode: a sync before the sleep set the
        RTC, which kept counting)."""
        if not self.valid:
            self.valid, self.source = True, source

    def set(self, wall_ms, source):
        """A trusted time (ms since 1970) from `source`."""
        jump = wall_ms - self.now_ms()
        was = self.valid
        self._base = wall_ms - self.mono()
        self.valid, self.source, self.error = True, source, None
        self.syncs += 1
        self.failures = 0
        self.board.set_clock(wall_ms)
        if not was:
            log.info("clock", "time valid (%s): %s", source, self.text())
        elif abs(jump) >= JUMP_MS:
            self.jumps += 1
            log.warning("clock", "the time moved by %+d ms at a sync (%s): now %s", jump,
                        source, self.text())
        else:
            return
        if self.on_change is not None:
            self.on_change()

    def text(self):
        y, mo, d, h, mi, s = self.zone.local(self.now())[:6]
        return "%04d-%02d-%02d %02d:%02d:%02d local (UTC%+.2g h)" % (
            y, mo, d, h, mi, s, self.zone.offset(self.now()) / 3600)

    async def sync(self):
        """Ask the servers in turn; True once one answered."""
        from .sntp import SntpError, query      # loaded for the sync, dropped after it
        try:
            for s in self.servers:
                host, port = server(s)
                try:
                    ms = await query(host, port)
                except SntpError as e:
                    self.error = str(e)
                    continue
                self.set(ms, "ntp")
                return True
        finally:
            from rbnode import forget
            forget("sntp")
        self.failures += 1
        (log.warning if self.failures == 1 else log.debug)(
            "clock", "no time from the NTP servers (%s)%s", self.error,
            ": the time is not valid yet" if not self.valid else "")
        return False

    async def run(self, online):
        """Sync once online() (the network is up), then every resync_h; retries after a
        failure in RETRY_S, doubling, at most an hour."""
        while True:
            if not online():
                await asyncio.sleep(5)
                continue
            if await self.sync():
                wait = self.resync_ms
            else:
                wait = min(3600000, RETRY_S * 1000 << min(7, self.failures - 1))
            await asyncio.sleep_ms(wait)
