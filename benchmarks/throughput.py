"""Satisfy throughput: acked requests per second from one client, one at a time
(send, wait for the ack) and pipelined (a window of requests in flight; acks share
fsyncs through group commit)."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import FrameClient, daemon
from benchmarks.push import DAEMON_CONFIG

WINDOW = 64


def _request(i: int) -> dict[str, Any]:
    return {"type": "satisfy", "id": i, "request_id": f"t{i}", "drive": "B", "amount": 0.0}


def measure(duration: float) -> dict[str, float]:
    with daemon(DAEMON_CONFIG) as (_proc, run):
        c = FrameClient(run / "sidecar.sock", "throughput", subscribe=False)
        i = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < duration:
            i += 1
            c.send(_request(i))
            assert c.recv()["type"] == "ack"
        serial = i / (time.monotonic() - t0)
        start, acked, sent = i, 0, i
        t0 = time.monotonic()
        while time.monotonic() - t0 < duration:
            while sent - start - acked < WINDOW:
                sent += 1
                c.send(_request(sent))
            assert c.recv()["type"] == "ack"
            acked += 1
        pipelined = acked / (time.monotonic() - t0)
        c.close()
    return {
        "serial_per_s": round(serial),
        "pipelined_per_s": round(pipelined),
        "pipeline_window": WINDOW,
    }
