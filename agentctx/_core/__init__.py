"""The layer the agentctx client and the sidecar daemon share.

Both packages import these modules and nothing of each other: the daemon
(`sidecar`) imports only `agentctx._core`, and the client library and CLI never
import `sidecar`. What lives here is what both sides must agree on:

- `errors`     the one exception tree, and the wire error codes
- `framing`    length-prefixed frames, as pure functions
- `protocol`   every wire message as a tagged msgspec Struct (the one schema)
- `config`     the drive config: TOML or emergence JSON, validated
- `paths`      where every file lives (stdlib only), `layout` the same as Paths
- `files`      atomic, symlink-safe file writes and bounded reads
- `snapshot`   the one reader of the live snapshot file
- `spool`      the request spool's file format
- `dirwatch`   following a directory with inotify, cancellable at once
- `peercred`   SO_PEERCRED checks, both ways
- `version`    the version

Private: the public API is `agentctx` itself (see its `__all__`).
"""
