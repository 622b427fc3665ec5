"""A busy machine, as during the push benchmark: a daemon receiving RATE_HZ satisfies
a second and N `subscribe()` processes receiving every state and event."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.common import FrameClient, daemon
from benchmarks.push import DAEMON_CONFIG, RATE_HZ, Pool


@contextmanager
def push_load(n: int, rate_hz: float = RATE_HZ) -> Iterator[None]:
    with daemon(DAEMON_CONFIG) as (_proc, run):
        sock = run / "sidecar.sock"
        pool = Pool("agentctx", str(sock), n)
        stop = threading.Event()

        def publish() -> None:
            client = FrameClient(sock, "load", subscribe=False)
            i = 0
            while not stop.wait(1 / rate_hz):
                i += 1
                client.send(
                    {
                        "type": "satisfy",
                        "id": i,
                        "request_id": f"load-{i}",
                        "drive": "B",
                        "amount": 0.0,
                        "reason": f"load{i}",
                    }
                )
                while client.recv().get("id") != i:
                    pass
            client.close()

        publisher = threading.Thread(target=publish, name="load-publisher")
        try:
            pool.wait_ready()
            publisher.start()
            time.sleep(1.0)  # let it reach its steady state
            yield
        finally:
            stop.set()
            if publisher.is_alive():
                publisher.join(10)
            pool.kill()
