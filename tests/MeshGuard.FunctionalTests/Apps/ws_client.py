#!/usr/bin/python3
"""A WebSocket client from Debian's python3-websockets, connecting through a sidecar's outbound port.

  ws_client.py OUTBOUND_PORT URL MESSAGE...   prints one JSON object: what the server said, or the refusal
"""
import asyncio
import json
import sys

import websockets


async def main(port, url, messages):
    try:
        # The URL's host goes in the Host header and routes; the TCP connection goes to the outbound port.
        async with websockets.connect(url, host="127.0.0.1", port=port, open_timeout=10) as ws:
            received = [await asyncio.wait_for(ws.recv(), 10)]
            for message in messages:
                await ws.send(message)
                received.append(await asyncio.wait_for(ws.recv(), 10))
            await ws.close()
            print(json.dumps({"received": received, "close_code": ws.close_code}))
    except websockets.exceptions.InvalidStatusCode as e:
        print(json.dumps({"refused": e.status_code}))


asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3:]))
