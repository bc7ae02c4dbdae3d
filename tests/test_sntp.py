"""rbnode.sntp on the unix port against a local NTP server (tools/host/ntpserver.py) that
answers right, refuses, is unsynchronised, is silent, or sends strangers' datagrams first."""
import calendar

from mpscript import run_script
from tools.host.ntpserver import NtpServer

SCRIPT = """
import asyncio, sys
from rbnode import sntp

ticks = [0]
async def ticker():
    while True:
        ticks[0] += 1
        await asyncio.sleep_ms(1)

async def one(host, port, timeout):
    t = asyncio.create_task(ticker())
    n = ticks[0]
    try:
        print("TIME", await sntp.query(host, int(port), int(timeout)), ticks[0] - n)
    except sntp.SntpError as e:
        print("ERROR", e, "|", ticks[0] - n)
    t.cancel()

for arg in sys.argv[1:]:
    asyncio.run(one(*arg.split(",")))
"""

T = calendar.timegm((2030, 6, 1, 12, 0, 0)) + 0.25           # the server's clock
T_ERA1 = calendar.timegm((2040, 1, 1, 0, 0, 0))              # past NTP's 2036 rollover


def _run(tmp_path, *queries):
    p = run_script(tmp_path, "sntp_check.py", SCRIPT,
                   [",".join(str(x) for x in q) for q in queries], timeout=60)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(("TIME", "ERROR"))]
    assert len(lines) == len(queries), p.stdout
    return lines


def test_a_good_answer_and_its_era_and_strangers_ignored(tmp_path):
    servers = [NtpServer("ok", T), NtpServer("ok", T_ERA1), NtpServer("noise", T),
               NtpServer("short", T)]
    try:
        lines = _run(tmp_path, *[("127.0.0.1", s.port, 3000) for s in servers])
    finally:
        for s in servers:
            s.stop()
    for (expect, line) in zip((T, T_ERA1, T, T), lines):
        kind, ms, _ = line.split()
        assert kind == "TIME", line
        # the server's transmit time plus half a round trip on loopback
        assert expect * 1000 <= int(ms) <= expect * 1000 + 3000, (expect, line)
    assert all(s.requests == 1 for s in servers), [s.requests for s in servers]


def test_refusals_are_named_and_a_silent_server_blocks_nothing(tmp_path):
    servers = {m: NtpServer(m, T) for m in ("kod", "unsync", "zero", "silent")}
    try:
        lines = _run(tmp_path, *[("127.0.0.1", s.port, 600) for s in servers.values()],
                     ("no-such-host.invalid", 123, 600))
    finally:
        for s in servers.values():
            s.stop()
    kod, unsync, zero, silent, unknown = lines
    assert "ERROR NTP server 127.0.0.1:%d: refused (kiss-o'-death RATE)" % \
        servers["kod"].port in kod, kod
    assert "not synchronised (leap indicator 3, stratum 16)" in unsync, unsync
    assert "no transmit time in the reply" in zero, zero
    assert "no answer in 600 ms" in silent, silent
    # the wait let the event loop run: another task ticked meanwhile (a blocking recv
    # would have held it until the end)
    assert int(silent.rsplit("|", 1)[1]) >= 2, silent
    assert "no-such-host.invalid:123: not found" in unknown, unknown
