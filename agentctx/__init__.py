"""agentctx: live drive state for AI agent sessions."""

__version__ = "0.1.0"
