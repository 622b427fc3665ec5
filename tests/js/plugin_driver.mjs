// The OpenClaw plugin's own modules (feed, hook), driven by a Python test one JSON
// line at a time against a real sidecar (tests/test_openclaw_plugin.py). Each line
// on stdin is a command, each answer one line on stdout:
//
//   {"op": "start"} / {"op": "stop"}           the feed (the plugin service's subscription),
//                                              and the wake (wake.js) on a stand-in OpenClaw
//   {"op": "wait", "seq": N} / {"mode": M}     until the feed has seq >= N / is in mode M
//   {"op": "wait", "event": K, "seq": N}       until a wire event of kind K with seq >= N came
//   {"op": "wakes"} / {"op": "take"}           the wakes asked for / a turn takes the queued ones
//   {"op": "current"}                          {"seq", "source"} or null
//   {"op": "history"} / {"op": "events"}       every state adopted ({seq, source}) / wire event
//   {"op": "hook", "session": S, "live": bool} the hook's answer, with or without the feed
//   {"op": "log"}                              what the plugin logged (warn and above)
//
//     node plugin_driver.mjs '{"mode": "changes"}'   (the plugin config; paths from the env)
import readline from "node:readline";

import { DriveFeed, runningFeed } from "../../agentctx/integrations/openclaw/feed.js";
import path from "node:path";

import { FIRED_FILE } from "../../agentctx/integrations/openclaw/fired.js";
import { createPromptHook } from "../../agentctx/integrations/openclaw/hook.js";
import { openclawStateDir, resolveOptions } from "../../agentctx/integrations/openclaw/options.js";
import { Waker } from "../../agentctx/integrations/openclaw/wake.js";

const WAIT_LIMIT_MS = 20_000; // a wait always answers: {"timeout": true} past this
const CLIENT = "agentctx-tests";

const options = resolveOptions(JSON.parse(process.argv[2] ?? "{}"), process.env);
const logged = [];
const logger = {
  debug: () => {},
  info: () => {},
  warn: (message) => logged.push(message),
  error: (message) => logged.push(message),
};
const feed = new DriveFeed({ ...options, client: CLIENT, logger });
const history = [];
const events = [];
feed.on("state", (state) => history.push({ seq: state.seq, source: state.source }));
feed.on("event", (event) => events.push(event));
// OpenClaw's side of a wake: its queue of system events (one per context key) and
// the heartbeats asked for. "take" is a turn: it empties the queue.
const queued = new Map();
const wakes = [];
const system = {
  enqueueSystemEvent: (text, { contextKey }) => {
    queued.set(contextKey.toLowerCase(), text.trim());
    wakes.push({ text, contextKey });
    return true;
  },
  requestHeartbeat: () => {},
  peekSystemEventEntries: () => [...queued].map(([contextKey, text]) => ({ contextKey, text })),
};
const waker = new Waker({
  feed,
  file: path.join(openclawStateDir(), FIRED_FILE),
  system,
  sessionKey: null,
  enabled: options.wake,
  logger,
});
const hook = (liveFeed) =>
  createPromptHook({ liveFeed, options, stateDir: openclawStateDir, client: CLIENT, logger });
const hooks = { live: hook(() => runningFeed(options)), alone: hook(() => null) };

function current() {
  const state = feed.current();
  return state === null ? null : { seq: state.seq, source: state.source };
}

function wait({ seq, mode, event }) {
  const done = () => {
    if (event !== undefined) return events.some((e) => e.kind === event && e.seq >= seq);
    return seq !== undefined ? (feed.current()?.seq ?? -1) >= seq : feed.mode === mode;
  };
  return new Promise((resolve) => {
    const finish = (answer) => {
      clearTimeout(timer);
      feed.off("state", check);
      feed.off("mode", check);
      feed.off("event", check);
      resolve(answer);
    };
    const check = () => done() && finish(current());
    const giveUp = () => finish({ timeout: true, mode: feed.mode, current: current() });
    const timer = setTimeout(giveUp, WAIT_LIMIT_MS);
    feed.on("state", check);
    feed.on("mode", check);
    feed.on("event", check);
    check();
  });
}

async function run(command) {
  switch (command.op) {
    case "start":
      waker.start();
      feed.start();
      return { mode: feed.mode };
    case "stop":
      feed.stop();
      waker.stop();
      return { mode: feed.mode };
    case "wakes":
      return wakes;
    case "take": {
      const taken = [...queued.values()];
      queued.clear();
      return taken;
    }
    case "wait":
      return wait(command);
    case "current":
      return current();
    case "history":
      return history;
    case "events":
      return events;
    case "hook": {
      const hook = command.live ? hooks.live : hooks.alone;
      const ctx = command.session === null ? {} : { sessionId: command.session };
      const result = await hook({ prompt: "hello", messages: [] }, ctx);
      return { block: result?.prependContext ?? null };
    }
    case "log":
      return logged;
    default:
      return { error: `unknown op ${command.op}` };
  }
}

for await (const line of readline.createInterface({ input: process.stdin })) {
  process.stdout.write(`${JSON.stringify(await run(JSON.parse(line)))}\n`);
}
feed.stop();
waker.stop();
