// agentctx for OpenClaw: every agent turn sees the live drive state.
//
// - A service (it runs inside `openclaw gateway`) holds one live subscription to the
//   agentctx sidecar, with the snapshot file as fallback (feed.js).
// - The before_prompt_build hook puts the drive block in front of the prompt, the
//   same text `agentctx context` prints, by default only when a drive changed band
//   or was satisfied, bumped or reset since the session's last block (hook.js).
// - When a drive's trigger fires in the sidecar, the service wakes the agent: a turn
//   with the drive's prompt, once per fire (wake.js).
//
// Install: `agentctx hooks install openclaw`. Plain ESM, no build step, no
// dependencies: OpenClaw's loader resolves the imports from openclaw/.

import path from "node:path";

import { definePluginEntry } from "openclaw/plugin-sdk/plugin-entry";

import { DriveFeed, runningFeed } from "./feed.js";
import { FIRED_FILE } from "./fired.js";
import { createPromptHook } from "./hook.js";
import { openclawStateDir, resolveOptions } from "./options.js";
import { Waker } from "./wake.js";

export const PLUGIN_ID = "agentctx";
export const SERVICE_ID = "agentctx-drives";
export const CLIENT = "openclaw-agentctx"; // our name in the sidecar's hello
// OpenClaw's own cut-off for the hook, past ours: our reads are bounded by timeoutMs.
const HOOK_TIMEOUT_MARGIN_MS = 1000;
// Where OpenClaw exports its system-event queue (to see when a turn took our event)
// and the main session's key; api.runtime.system has neither.
const SYSTEM_EVENTS_SDK = "openclaw/plugin-sdk/system-event-runtime";

function why(error) {
  return String(error?.message ?? error);
}

/** What the wake needs of OpenClaw, or null (and a warning) when it cannot wake. */
async function openclawSystem(api, logger) {
  const system = api.runtime?.system;
  const has = (name) => typeof system?.[name] === "function";
  if (!has("enqueueSystemEvent") || !has("requestHeartbeat")) {
    logger.warn("agentctx: no system events or heartbeats in this OpenClaw: fired triggers wake nobody");
    return null;
  }
  let sdk = {};
  try {
    sdk = await import(SYSTEM_EVENTS_SDK);
  } catch (error) {
    logger.warn(`agentctx: ${SYSTEM_EVENTS_SDK}: ${why(error)}; a wake counts as done once queued`);
  }
  return {
    enqueueSystemEvent: (text, options) => system.enqueueSystemEvent(text, options),
    requestHeartbeat: (options) => system.requestHeartbeat(options),
    peekSystemEventEntries: sdk.peekSystemEventEntries,
    mainSessionKey: sdk.resolveMainSessionKeyFromConfig,
  };
}

export default definePluginEntry({
  id: PLUGIN_ID,
  name: "agentctx",
  description:
    "Live drive state (agentctx) in front of every agent turn; a fired trigger wakes the agent.",
  // register() runs several times per process (a "full" registration and
  // discovery passes): it only wires things up; the service starts the work.
  register(api) {
    const options = resolveOptions(api.pluginConfig, process.env);
    const logger = api.logger;
    const feed = new DriveFeed({ ...options, client: CLIENT, logger });
    const stateDir = () => api.runtime?.state?.resolveStateDir?.(process.env) ?? openclawStateDir();
    let waker = null;
    api.registerService({
      id: SERVICE_ID,
      start: async (ctx) => {
        try {
          const system = options.wake ? await openclawSystem(api, logger) : null;
          waker = new Waker({
            feed,
            file: path.join(ctx?.stateDir ?? stateDir(), FIRED_FILE),
            system: system ?? {},
            sessionKey: options.sessionKey,
            enabled: system !== null, // off: fires are recorded as handled, nobody is woken
            logger,
          });
          waker.start(); // before the feed: its first state is compared too
        } catch (error) {
          logger.warn(`agentctx: fired triggers wake nobody: ${why(error)}`);
        }
        feed.start();
      },
      stop: () => {
        feed.stop();
        waker?.stop();
        waker = null;
      },
    });
    // The hook called may be another registration's: it asks for whichever feed runs.
    const liveFeed = () => runningFeed(options);
    const hook = createPromptHook({ liveFeed, options, stateDir, client: CLIENT, logger });
    api.on("before_prompt_build", hook, { timeoutMs: options.timeoutMs + HOOK_TIMEOUT_MARGIN_MS });
  },
});
