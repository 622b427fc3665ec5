// The wake's memory of handled fires: a fire wakes the agent once, whether it is seen
// in a state, in a `triggered` event, or both, before or after a restart; nothing
// wakes for fires older than the memory; a wake still queued in OpenClaw when the
// gateway stops is not counted as handled. OpenClaw is a stand-in here that keeps a
// queue as OpenClaw's system events do (tests/test_openclaw_wake.py has the real one).
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";

import {
  FiredMemory,
  isoMicros,
  microsIso,
  secondsMicros,
} from "../../agentctx/integrations/openclaw/fired.js";
import { DriveState } from "../../agentctx/integrations/openclaw/state.js";
import {
  MAIN_SESSION_KEY,
  WAKE_INTENT,
  WAKE_SOURCE,
  Waker,
  wakeText,
} from "../../agentctx/integrations/openclaw/wake.js";

const PROMPT = "Your CARE drive triggered. Check in with your human.";
// The example session in docs/protocol.md: one instant as the event's float and the state's text.
const TS = 1795645008.765655;
const ISO = "2026-11-25T22:16:48.765655+00:00";
const LATER = "2026-11-25T23:00:00+00:00";

function tempFile() {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), "agentctx-wake-")), "fired.json");
}

function drive(lastFired, extra = {}) {
  return { pressure: 21, threshold: 20, band: "triggered", prompt: PROMPT, last_fired: lastFired, ...extra };
}

function state(drives, tickTs = TS) {
  return new DriveState({ seq: 1, tick_ts: tickTs, drives }, "socket", tickTs);
}

/** The feed as the service has it: "state" and "event" emitted, current() the newest state. */
class Feed extends EventEmitter {
  latest = null;

  current() {
    return this.latest;
  }

  push(next) {
    this.latest = next;
    this.emit("state", next);
  }

  triggered(name, ts = TS, pressure = 21) {
    this.emit("event", { type: "event", kind: "triggered", drive: name, ts, pressure, band: "triggered" });
  }
}

/** OpenClaw's side: a per-session queue of system events (contextKey lowercased, replace). */
class OpenClaw {
  queues = new Map();
  heartbeats = [];
  enqueued = [];
  failing = false;

  system() {
    return {
      enqueueSystemEvent: (text, { sessionKey, contextKey, replace }) => {
        if (this.failing) throw new Error("queue closed");
        assert.equal(replace, true);
        const key = contextKey.toLowerCase();
        const queued = this.queues.get(sessionKey) ?? [];
        // as OpenClaw: the same text already queued under the key is not queued again
        if (queued.some((e) => e.contextKey === key && e.text === text.trim())) return false;
        const queue = queued.filter((e) => e.contextKey !== key);
        queue.push({ text: text.trim(), contextKey: key });
        this.queues.set(sessionKey, queue);
        this.enqueued.push({ text, sessionKey, contextKey });
        return true;
      },
      requestHeartbeat: (options) => this.heartbeats.push(options),
      peekSystemEventEntries: (sessionKey) => [...(this.queues.get(sessionKey) ?? [])],
      mainSessionKey: () => MAIN_SESSION_KEY,
    };
  }

  /** A turn in *sessionKey*: it takes every queued event. */
  turn(sessionKey = MAIN_SESSION_KEY) {
    const taken = this.queues.get(sessionKey) ?? [];
    this.queues.delete(sessionKey);
    return taken;
  }
}

function logger() {
  const lines = [];
  return { lines, debug() {}, info() {}, warn: (m) => lines.push(m), error: (m) => lines.push(m) };
}

function waker(file, feed, openclaw, extra = {}) {
  const w = new Waker({
    feed,
    file,
    system: openclaw.system(),
    sessionKey: null,
    enabled: true,
    logger: logger(),
    ...extra,
  });
  w.start();
  return w;
}

test("the event's float and the state's text name the same microsecond", () => {
  assert.equal(secondsMicros(TS), isoMicros(ISO));
  assert.equal(microsIso(isoMicros(ISO)), ISO);
  assert.equal(isoMicros("2026-11-25T22:16:48+00:00"), isoMicros("2026-11-25T22:16:48.000000+00:00"));
  assert.equal(isoMicros("2026-11-25T23:16:48+01:00"), isoMicros("2026-11-25T22:16:48Z"));
  for (const bad of [null, "", "yesterday", "2026-11-25 22:16:48", 17]) assert.equal(isoMicros(bad), null);
});

test("the text states the fire and carries the prompt", () => {
  const micros = isoMicros(ISO);
  assert.equal(
    wakeText("CARE", micros, drive(ISO, { pressure: 21.34 })),
    `agentctx drive CARE triggered at 2026-11-25 22:16:48 UTC (now 21.3/20). ${PROMPT}`,
  );
  assert.equal(wakeText("X", micros, undefined), "agentctx drive X triggered at 2026-11-25 22:16:48 UTC.");
  assert.equal(wakeText("X", micros, { threshold: 2.5, pressure: 3, prompt: "  \n" }),
    "agentctx drive X triggered at 2026-11-25 22:16:48 UTC (now 3.0/2.5).");
});

test("the first run wakes nobody for fires older than the plugin; later fires wake once", () => {
  const file = tempFile();
  const feed = new Feed();
  const openclaw = new OpenClaw();
  const w = waker(file, feed, openclaw);
  feed.push(state({ CARE: drive(ISO), REST: drive(null) }));
  assert.deepEqual(openclaw.enqueued, [], "an old fire woke the agent on install");
  const saved = JSON.parse(fs.readFileSync(file, "utf8"));
  assert.deepEqual(saved.fired, { CARE: ISO, REST: null });

  feed.push(state({ CARE: drive(ISO), REST: drive(LATER) }, TS + 3000));
  feed.triggered("REST", isoMicros(LATER) / 1e6); // its event, right after its state
  feed.push(state({ CARE: drive(ISO), REST: drive(LATER) }, TS + 3001)); // the next tick
  assert.equal(openclaw.enqueued.length, 1);
  const [wake] = openclaw.enqueued;
  assert.equal(wake.sessionKey, MAIN_SESSION_KEY);
  assert.equal(wake.contextKey, "agentctx:REST");
  assert.ok(wake.text.endsWith(PROMPT), wake.text);
  assert.deepEqual(openclaw.heartbeats, [
    { source: WAKE_SOURCE, intent: WAKE_INTENT, reason: "hook:agentctx:REST", sessionKey: MAIN_SESSION_KEY },
  ]);
  w.stop();
});

test("a fire seen first in its event wakes once; the state after it adds nothing", () => {
  const feed = new Feed();
  const openclaw = new OpenClaw();
  const w = waker(tempFile(), feed, openclaw);
  feed.push(state({ CARE: drive(null) }));
  feed.triggered("CARE", TS, 20.5);
  feed.push(state({ CARE: drive(ISO) }, TS + 1));
  feed.triggered("CARE", TS, 20.5); // a reconnect replays nothing, but if it did
  assert.equal(openclaw.enqueued.length, 1);
  assert.match(openclaw.enqueued[0].text, /\(now 20\.5\/20\)/);
  w.stop();
});

test("a delivered wake is remembered across a restart; a fire while stopped wakes once after", () => {
  const file = tempFile();
  const openclaw = new OpenClaw();
  let feed = new Feed();
  let w = waker(file, feed, openclaw);
  feed.push(state({ CARE: drive(null) }));
  feed.push(state({ CARE: drive(ISO) }, TS + 1));
  assert.equal(openclaw.turn().length, 1); // the agent's turn takes the event
  w.stop(); // the gateway stops: the taken wake is recorded as handled
  assert.equal(JSON.parse(fs.readFileSync(file, "utf8")).fired.CARE, ISO);

  feed = new Feed(); // a new gateway process, the same state dir
  feed.latest = state({ CARE: drive(LATER) }, TS + 5000); // fired meanwhile
  w = waker(file, feed, openclaw); // the feed's state at start counts
  feed.push(state({ CARE: drive(LATER) }, TS + 5001));
  assert.equal(openclaw.enqueued.length, 2);
  assert.match(openclaw.enqueued[1].text, /triggered at 2026-11-25 23:00:00 UTC/);
  assert.equal(openclaw.turn().length, 1);
  w.stop();

  feed = new Feed();
  w = waker(file, feed, openclaw);
  feed.push(state({ CARE: drive(LATER) }, TS + 6000));
  feed.triggered("CARE", isoMicros(LATER) / 1e6); // its event again, had it been replayed
  feed.triggered("CARE", TS);
  assert.equal(openclaw.enqueued.length, 2, "a handled fire woke the agent again");
  w.stop();
});

test("a wake still queued when the gateway stops is lost with it, so it is queued again", () => {
  const file = tempFile();
  let openclaw = new OpenClaw();
  let feed = new Feed();
  let w = waker(file, feed, openclaw);
  feed.push(state({ CARE: drive(null) }));
  feed.push(state({ CARE: drive(ISO) }, TS + 1));
  w.stop(); // no turn took it (OpenClaw's flood guard, say)
  assert.equal(JSON.parse(fs.readFileSync(file, "utf8")).fired.CARE, null);

  openclaw = new OpenClaw(); // the restarted gateway's queue is empty
  feed = new Feed();
  w = waker(file, feed, openclaw);
  feed.push(state({ CARE: drive(ISO) }, TS + 2));
  assert.equal(openclaw.enqueued.length, 1);
  w.stop();
});

test("a service restarted inside the gateway finds its event still queued and adds none", () => {
  const file = tempFile();
  const openclaw = new OpenClaw();
  let feed = new Feed();
  let w = waker(file, feed, openclaw);
  feed.push(state({ CARE: drive(null) }));
  feed.push(state({ CARE: drive(ISO) }, TS + 1));
  w.stop();
  feed = new Feed();
  const log = logger();
  w = waker(file, feed, openclaw, { logger: log });
  feed.push(state({ CARE: drive(ISO) }, TS + 2));
  assert.equal(openclaw.queues.get(MAIN_SESSION_KEY).length, 1, "two events for one fire");
  assert.deepEqual(log.lines, [], "an event already queued is not a failure");
  assert.equal(openclaw.heartbeats.length, 2, "the new service asks for the turn again");
  assert.equal(openclaw.turn().length, 1);
  w.stop();
});

test("a drive added later wakes only for fires after the memory began", () => {
  const feed = new Feed();
  const openclaw = new OpenClaw();
  const w = waker(tempFile(), feed, openclaw);
  feed.push(state({ CARE: drive(null) }, TS));
  feed.push(state({ CARE: drive(null), OLD: drive("2026-11-25T20:00:00+00:00") }, TS + 10));
  assert.equal(openclaw.enqueued.length, 0);
  feed.push(state({ CARE: drive(null), NEW: drive(LATER) }, TS + 3000));
  assert.deepEqual(openclaw.enqueued.map((e) => e.contextKey), ["agentctx:NEW"]);
  w.stop();
});

test("wake off: fires are recorded as handled, so turning it on later wakes for none of them", () => {
  const file = tempFile();
  const openclaw = new OpenClaw();
  let feed = new Feed();
  let w = waker(file, feed, openclaw, { enabled: false });
  feed.push(state({ CARE: drive(null) }));
  feed.push(state({ CARE: drive(ISO) }, TS + 1));
  w.stop();
  feed = new Feed();
  w = waker(file, feed, openclaw);
  feed.push(state({ CARE: drive(ISO) }, TS + 2));
  assert.deepEqual(openclaw.enqueued, []);
  w.stop();
});

test("a wake that fails is logged and tried again; an unreadable memory is a new baseline", async () => {
  const file = tempFile();
  const openclaw = new OpenClaw();
  const feed = new Feed();
  const log = logger();
  const w = waker(file, feed, openclaw, { logger: log, retryMs: 10 });
  feed.push(state({ CARE: drive(null) }));
  openclaw.failing = true;
  feed.push(state({ CARE: drive(ISO) }, TS + 1));
  assert.equal(openclaw.enqueued.length, 0);
  assert.match(log.lines.join("\n"), /could not wake the agent for CARE \(queue closed\)/);
  openclaw.failing = false;
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(openclaw.enqueued.length, 1);
  w.stop();

  fs.writeFileSync(file, "{torn");
  const log2 = logger();
  const again = waker(file, new Feed(), openclaw, { logger: log2 });
  assert.match(log2.lines.join("\n"), /fired\.json: .*count as handled/);
  again.stop();
});

test("the memory file is private and names each drive's last handled fire", () => {
  const file = tempFile();
  const memory = new FiredMemory(file);
  assert.equal(memory.load(), null);
  assert.equal(memory.ready, false);
  memory.baseline(state({ CARE: drive(ISO) }));
  memory.record("CARE", isoMicros(ISO) - 5_000_000); // an older fire never moves it back
  memory.save();
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const reread = new FiredMemory(file);
  assert.equal(reread.load(), null);
  assert.equal(reread.handled("CARE"), isoMicros(ISO));
  assert.equal(reread.handled("UNSEEN"), isoMicros(ISO), "a drive never seen: the memory's start");
});
