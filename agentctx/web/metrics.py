"""`GET /metrics`: the bridge's view in Prometheus text format (prometheus-client).

A custom collector reads the bridge at scrape time, so nothing is updated on the
hot path and a drive removed from the config simply stops being exported. Each app
has its own registry: no process-global state (two servers, or tests, never mix).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from agentctx.web.bridge import Bridge

__all__ = ["CONTENT_TYPE", "PREFIX", "BridgeCollector", "make_registry", "render"]

PREFIX: Final = "agentctx"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST


class BridgeCollector:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def collect(self) -> Iterator[Metric]:
        bridge = self.bridge
        pressure = GaugeMetricFamily(
            f"{PREFIX}_drive_pressure", "Pressure of a drive", labels=["drive"]
        )
        threshold = GaugeMetricFamily(
            f"{PREFIX}_drive_threshold", "Threshold of a drive", labels=["drive"]
        )
        ratio = GaugeMetricFamily(
            f"{PREFIX}_drive_ratio", "Pressure over threshold (1 = triggered)", labels=["drive"]
        )
        seq = GaugeMetricFamily(f"{PREFIX}_state_seq", "seq of the newest drive state seen")
        age = GaugeMetricFamily(
            f"{PREFIX}_state_age_seconds", "Seconds since the sidecar ticked the state shown"
        )
        state = bridge.state
        if state is not None:
            for name, drive in sorted(state.drives.items()):
                pressure.add_metric([name], float(drive.get("pressure", 0.0)))
                threshold.add_metric([name], float(drive.get("threshold", 0.0)))
                ratio.add_metric([name], float(drive.get("ratio", 0.0)))
            seq.add_metric([], state.seq)
            age.add_metric([], max(0.0, time.time() - state.tick_ts))
        yield from (pressure, threshold, ratio, seq, age)
        yield GaugeMetricFamily(
            f"{PREFIX}_sidecar_live",
            "1 while the sidecar's socket answers, 0 while the snapshot file stands in",
            value=1.0 if bridge.mode == "live" else 0.0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_web_sse_clients",
            "Browser tabs connected to /events",
            value=len(bridge.outlets),
        )
        yield CounterMetricFamily(
            f"{PREFIX}_web_sse_dropped_events",
            "Drive events dropped for tabs that stopped reading",
            value=bridge.dropped_events,
        )


def make_registry(bridge: Bridge) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(BridgeCollector(bridge))
    ProcessCollector(registry=registry)  # this process's CPU seconds, RSS, open fds
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
