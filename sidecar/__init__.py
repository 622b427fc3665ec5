"""The agentctx sidecar daemon: drive engine, durable state, live snapshot, socket server."""

__version__ = "0.1.0"
