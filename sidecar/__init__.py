"""The agentctx sidecar daemon: drive engine, durable state, live snapshot, socket server.

It imports only the shared layer of the client package (`agentctx._core`):
docs/architecture.md draws the line.
"""
