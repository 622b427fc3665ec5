"""`agentctx web`: the drives live in a browser, over Server-Sent Events.

A separate process (the sidecar stays socket-only): it subscribes like any client
(`agentctx.subscribe()`) and serves one page, an SSE stream, JSON state, the
satisfy/bump/reset requests and Prometheus metrics with Starlette on uvicorn.

    security.py  listen address, token, Host check (the ASGI guard)
    bridge.py    the subscription, fanned out to one Outlet per browser tab
    sse.py       SSE framing and the streaming response of one tab
    metrics.py   the Prometheus collector, read off the bridge at scrape time
    app.py       the Starlette routes
    server.py    uvicorn embedded in a task group, started and stopped cleanly
    static/      the page: HTML, JS, CSS (package data, no build step, no CDN)

Needs the `web` extra (`pip install '.[web]'` from the checkout); nothing here is imported by
the rest of agentctx, and never by the hook path.
"""

from __future__ import annotations

__all__: list[str] = []
