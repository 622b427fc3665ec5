// agentctx web: the drives, live over Server-Sent Events (docs/web.md).
// Everything from the server is put in with textContent, never as HTML: a drive's
// description or a request's reason is text from elsewhere.
"use strict";

(() => {
  const EVENTS_SHOWN = 100; // entries kept in the event list
  const TOAST_MS = 4000;
  const TICK_MS = 1000; // the "snapshot N s old" line counts up this often

  const token = document.querySelector('meta[name="agentctx-token"]').content;
  const drivesEl = document.getElementById("drives");
  const eventsEl = document.getElementById("events");
  const connectionEl = document.getElementById("connection");
  const seqEl = document.getElementById("seq");
  const toastEl = document.getElementById("toast");
  const template = document.getElementById("drive-template");

  // Every seq this page was sent and every seq it drew, in order: tests (and the
  // curious) read them to check that neither ever went back to an older state.
  const received = [];
  const rendered = [];
  window.agentctx = { received, rendered };

  let current = null; // the state shown
  let mode = "starting"; // the bridge's link to the sidecar: live, fallback, starting
  let reason = "";
  let ageBase = null; // the state's age in seconds when it was last told us...
  let ageAt = 0; // ...at this performance.now()
  let stream = "connecting"; // our own link to agentctx web: open, connecting, closed

  // --- the state ---------------------------------------------------------------------

  // The rule of agentctx.DriveState.newer_than: seq decides; a sidecar that lost its
  // state (new boot, lower seq) is followed only with a more recent tick.
  function newer(s) {
    if (current === null || s.seq > current.seq) return true;
    return s.boot_id !== current.boot_id && s.seq < current.seq && s.tick_ts > current.tick_ts;
  }

  function age(seconds) {
    if (seconds < 120) return `${Math.floor(seconds)} s`;
    if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function since(iso, tickTs) {
    if (!iso) return "never satisfied";
    const when = Date.parse(iso) / 1000;
    return Number.isNaN(when) ? `satisfied ${iso}` : `satisfied ${age(Math.max(0, tickTs - when))} ago`;
  }

  function driveElement(name) {
    for (const el of drivesEl.children) if (el.dataset.drive === name) return el;
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.drive = name;
    el.querySelector(".name").textContent = name;
    drivesEl.append(el);
    return el;
  }

  function renderDrive(name, d, tickTs) {
    const el = driveElement(name);
    const top = d.max_pressure || d.threshold || 1;
    el.className = `drive band-${d.band}`;
    el.title = d.description || "";
    el.querySelector(".numbers").textContent =
      `${d.pressure.toFixed(1)} / ${d.threshold} (${Math.round(d.ratio * 100)}%)`;
    el.querySelector(".band").textContent = d.band;
    el.querySelector(".status").textContent = d.status;
    el.querySelector(".fill").style.width = `${Math.min(100, (d.pressure / top) * 100)}%`;
    el.querySelector(".threshold").style.left = `${Math.min(100, (d.threshold / top) * 100)}%`;
    el.querySelector(".satisfied").textContent = since(d.last_satisfied, tickTs);
  }

  function onState(s) {
    received.push(s.seq);
    if (!newer(s)) return;
    current = s;
    const names = Object.keys(s.drives);
    for (const name of names) renderDrive(name, s.drives[name], s.tick_ts);
    for (const el of [...drivesEl.children]) if (!names.includes(el.dataset.drive)) el.remove();
    drivesEl.dataset.seq = String(s.seq);
    seqEl.textContent = `seq ${s.seq}`;
    rendered.push(s.seq);
    ageBase = s.age_s;
    ageAt = performance.now();
    showConnection();
  }

  // --- the connection line ---------------------------------------------------------

  function showConnection() {
    let text;
    let shown;
    if (stream === "closed") {
      [shown, text] = ["gone", "agentctx web stopped — reload the page (its URL may have changed)"];
    } else if (stream === "connecting" && current !== null) {
      [shown, text] = ["reconnecting", "reconnecting to agentctx web…"];
    } else if (mode === "live") {
      [shown, text] = ["live", "live"];
    } else if (mode === "fallback") {
      const old = ageBase === null ? null : ageBase + (performance.now() - ageAt) / 1000;
      shown = "down";
      text = old === null ? "sidecar down — no snapshot" : `sidecar down — snapshot ${age(old)} old`;
    } else {
      [shown, text] = ["starting", "connecting…"];
    }
    connectionEl.dataset.mode = shown;
    connectionEl.textContent = text;
    connectionEl.title = reason;
  }

  function onStatus(st) {
    mode = st.mode;
    reason = st.problem ? `${st.reason}; ${st.problem}` : st.reason;
    if (st.age_s !== null) {
      ageBase = st.age_s;
      ageAt = performance.now();
    }
    showConnection();
  }

  // --- events ----------------------------------------------------------------------

  function describe(e) {
    const where = `→ ${Number(e.pressure).toFixed(1)} (${e.band})`;
    const why = e.reason ? ` — ${e.reason}` : "";
    switch (e.kind) {
      case "satisfied": {
        const how = e.depth || (e.amount != null ? `by ${e.amount}` : "");
        return `satisfied ${how} ${where}${why}`.replace("  ", " ");
      }
      case "bumped":
        return `bumped +${e.amount || 0} ${where}${why}`;
      case "reset":
        return `reset ${where}${why}`;
      case "band_changed":
        return `${e.from} → ${e.to} (ratio ${Number(e.ratio).toFixed(2)})`;
      case "triggered":
        return `TRIGGERED at ${Math.round(e.ratio * 100)}%`;
      case "action_started":
        return `action started: ${e.detail || ""}`;
      case "action_finished":
        return `action finished: ${e.detail || ""}`;
      default:
        return e.kind;
    }
  }

  function onDrive(e) {
    const li = document.createElement("li");
    li.className = `event kind-${e.kind}`;
    li.dataset.seq = String(e.seq);
    const time = document.createElement("time");
    time.textContent = new Date(e.ts * 1000).toLocaleTimeString();
    const drive = document.createElement("b");
    drive.textContent = e.drive;
    li.append(time, " ", drive, " ", describe(e));
    eventsEl.prepend(li);
    while (eventsEl.children.length > EVENTS_SHOWN) eventsEl.lastElementChild.remove();
  }

  // --- requests --------------------------------------------------------------------

  let toastTimer = 0;
  function toast(text, bad) {
    toastEl.textContent = text;
    toastEl.className = bad ? "toast shown bad" : "toast shown";
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (toastEl.className = "toast"), TOAST_MS);
  }

  async function send(kind, body) {
    try {
      const r = await fetch(`/${kind}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Agentctx-Token": token },
        body: JSON.stringify(body),
      });
      const answer = await r.json();
      if (!r.ok) toast(`${kind} refused: ${answer.message}`, true);
      else if (answer.status === "acked") toast(`${kind} ${body.drive}: done (seq ${answer.seq})`);
      else toast(`${kind} ${body.drive}: the sidecar is down; queued, applied when it is back`);
    } catch (err) {
      toast(`${kind}: agentctx web did not answer (${err})`, true);
    }
  }

  drivesEl.addEventListener("click", (ev) => {
    const button = ev.target.closest("button");
    if (!button) return;
    const el = button.closest(".drive");
    const drive = el.dataset.drive;
    const why = "from the web view";
    if (button.classList.contains("satisfy")) {
      send("satisfy", { drive, depth: el.querySelector(".depth").value, reason: why });
    } else if (button.classList.contains("bump")) {
      send("bump", { drive, amount: Number(el.querySelector(".amount").value), reason: why });
    } else if (button.classList.contains("reset")) {
      send("reset", { drive, reason: why });
    }
  });

  // --- the stream ------------------------------------------------------------------

  const source = new EventSource("/events");
  source.addEventListener("state", (ev) => onState(JSON.parse(ev.data)));
  source.addEventListener("status", (ev) => onStatus(JSON.parse(ev.data)));
  source.addEventListener("drive", (ev) => onDrive(JSON.parse(ev.data)));
  source.addEventListener("open", () => {
    stream = "open";
    showConnection();
  });
  source.addEventListener("error", () => {
    // CONNECTING: the browser retries by itself (and says Last-Event-ID); CLOSED: it
    // gave up, e.g. on a 401 from an agentctx web restarted with a new token.
    stream = source.readyState === EventSource.CLOSED ? "closed" : "connecting";
    showConnection();
  });
  setInterval(showConnection, TICK_MS);
})();
