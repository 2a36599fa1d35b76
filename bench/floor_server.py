"""The floor: a bare aiohttp websocket server on loopback, no app, no database.

`python -m bench.floor_server PORT`. A text message "sub" makes the socket a subscriber; "b:<payload>"
sends <payload> to every subscriber (a bare fan-out); anything else is echoed back.
"""
from __future__ import annotations

import sys

from aiohttp import WSMsgType, web

subscribers: set[web.WebSocketResponse] = set()


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            data = message.data
            if data == "sub":
                subscribers.add(ws)
                await ws.send_str("ok")
            elif data.startswith("b:"):
                payload = data[2:]
                for sub in list(subscribers):
                    await sub.send_str(payload)
                await ws.send_str("sent")
            else:
                await ws.send_str(data)
    finally:
        subscribers.discard(ws)
    return ws


async def status(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_get("/ws", socket)
    app.router.add_get("/status", status)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
