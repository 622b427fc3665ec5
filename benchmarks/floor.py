"""The physical floor: a bare asyncio Unix-socket publisher, nothing else.

    python -m benchmarks.floor SOCKET_PATH

Accepts subscribers; each line "pub TAG" on stdin sends every subscriber one
length-prefixed JSON frame {"ts", "tag", "pad"}; "stop" sends the stop frame; EOF ends.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time

PAD = "x" * 800  # about the size of agentctx's state + event frames


async def main(path: str) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)

    server = await asyncio.start_unix_server(accept, path)
    print("listening", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "pub":
            body = json.dumps({"ts": time.time(), "tag": line[1], "pad": PAD}).encode()
        else:
            body = json.dumps({"stop": True}).encode()
        frame = struct.pack(">I", len(body)) + body
        for w in writers:
            w.write(frame)
        print("sent", flush=True)
    server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
