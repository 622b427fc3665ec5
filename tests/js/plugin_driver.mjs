// The OpenClaw plugin's own modules (feed, hook), driven by a Python test one JSON
// line at a time against a real sidecar (tests/test_openclaw_plugin.py). Each line
// on stdin is a command, each answer one line on stdout:
//
//   {"op": "start"} / {"op": "stop"}           the feed (the plugin service's subscription)
//   {"op": "wait", "seq": N} / {"mode": M}     until the feed has seq >= N / is in mode M
//   {"op": "current"}                          {"seq", "source"} or null
//   {"op": "history"} / {"op": "events"}       every state adopted ({seq, source}) / wire event
//   {"op": "hook", "session": S, "live": bool} the hook's answer, with or without the feed
//   {"op": "log"}                              what the plugin logged (warn and above)
//
//     node plugin_driver.mjs '{"mode": "changes"}'   (the plugin config; paths from the env)
import readline from "node:readline";

import { DriveFeed, runningFeed } from "../../agentctx/integrations/openclaw/feed.js";
import { createPromptHook } from "../../agentctx/integrations/openclaw/hook.js";
import { openclawStateDir, resolveOptions } from "../../agentctx/integrations/openclaw/options.js";

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
const hook = (liveFeed) =>
  createPromptHook({ liveFeed, options, stateDir: openclawStateDir, client: CLIENT, logger });
const hooks = { live: hook(() => runningFeed(options)), alone: hook(() => null) };

function current() {
  const state = feed.current();
  return state === null ? null : { seq: state.seq, source: state.source };
}

function wait({ seq, mode }) {
  const done = () => (seq !== undefined ? (feed.current()?.seq ?? -1) >= seq : feed.mode === mode);
  return new Promise((resolve) => {
    const finish = (answer) => {
      clearTimeout(timer);
      feed.off("state", check);
      feed.off("mode", check);
      resolve(answer);
    };
    const check = () => done() && finish(current());
    const giveUp = () => finish({ timeout: true, mode: feed.mode, current: current() });
    const timer = setTimeout(giveUp, WAIT_LIMIT_MS);
    feed.on("state", check);
    feed.on("mode", check);
    check();
  });
}

async function run(command) {
  switch (command.op) {
    case "start":
      feed.start();
      return { mode: feed.mode };
    case "stop":
      feed.stop();
      return { mode: feed.mode };
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
