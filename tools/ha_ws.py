"""Home Assistant's websocket API from the command line (runs in HA's venv: its aiohttp).

    ha_ws.py <url> <token> '[{"type": "config/entity_registry/list"}, ...]'

Prints a JSON list with each command's result (or {"error": ...}).
"""
import asyncio
import json
import sys

import aiohttp


async def main(url, token, commands):
    out = []
    async with aiohttp.ClientSession() as s, s.ws_connect(url + "/api/websocket") as ws:
        assert (await ws.receive_json())["type"] == "auth_required"
        await ws.send_json({"type": "auth", "access_token": token})
        ok = await ws.receive_json()
        if ok["type"] != "auth_ok":
            raise SystemExit("auth: %r" % ok)
        for i, cmd in enumerate(commands, start=1):
            await ws.send_json(dict(cmd, id=i))
            while True:
                msg = await ws.receive_json()
                if msg.get("id") == i and msg["type"] == "result":
                    out.append(msg["result"] if msg["success"] else {"error": msg["error"]})
                    break
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
