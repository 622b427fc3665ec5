"""Satisfy -> second client push latency, ack latency, and daemon RSS with 10 clients.

    python -m benchmarks.daemon_basics [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from benchmarks.common import FrameClient, daemon, rss_mb, summary_us

CONFIG = """
[sidecar]
tick_interval = 1.0
[drives.CARE]
threshold = 1e9
activity_driven = true
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    with daemon(CONFIG) as (proc, run):
        sock = run / "sidecar.sock"
        actor = FrameClient(sock, "actor", subscribe=False)
        watcher = FrameClient(sock, "watcher", subscribe=True)
        others = [FrameClient(sock, f"idle{i}", subscribe=True) for i in range(8)]
        watcher.recv()
        push: list[float] = []
        ack: list[float] = []
        for i in range(args.requests):
            t0 = time.perf_counter()
            actor.send({"type": "satisfy", "id": i, "request_id": uuid.uuid4().hex,
                        "drive": "CARE", "amount": 1.0})
            while True:
                m = watcher.recv()
                if m["type"] == "event" and m["kind"] == "satisfied":
                    push.append(time.perf_counter() - t0)
                    break
            reply = actor.recv()
            ack.append(time.perf_counter() - t0)
            assert reply["type"] == "ack", reply
            time.sleep(0.005)
        for c in others:  # keep them subscribed (and drained) until RSS is read
            c.sock.setblocking(False)
        rss = rss_mb(proc.pid)
        result = {
            "satisfy_to_second_client": summary_us(push),
            "satisfy_ack": summary_us(ack),
            "daemon_rss_mb_10_clients": round(rss, 1),
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
