// agentctx for OpenClaw: every agent turn sees the live drive state.
//
// - A service (it runs inside `openclaw gateway`) holds one live subscription to the
//   agentctx sidecar, with the snapshot file as fallback (feed.js).
// - The before_prompt_build hook puts the drive block in front of the prompt, the
//   same text `agentctx context` prints, by default only when a drive changed band
//   or was satisfied, bumped or reset since the session's last block (hook.js).
//
// Install: `agentctx hooks install openclaw`. Plain ESM, no build step, no
// dependencies: OpenClaw's loader resolves the one import below.

import { definePluginEntry } from "openclaw/plugin-sdk/plugin-entry";

import { DriveFeed, runningFeed } from "./feed.js";
import { createPromptHook } from "./hook.js";
import { openclawStateDir, resolveOptions } from "./options.js";

export const PLUGIN_ID = "agentctx";
export const SERVICE_ID = "agentctx-drives";
export const CLIENT = "openclaw-agentctx"; // our name in the sidecar's hello
// OpenClaw's own cut-off for the hook, past ours: our reads are bounded by timeoutMs.
const HOOK_TIMEOUT_MARGIN_MS = 1000;

export default definePluginEntry({
  id: PLUGIN_ID,
  name: "agentctx",
  description: "Live drive state (agentctx) in front of every agent turn.",
  // register() runs several times per process (a "full" registration and
  // discovery passes): it only wires things up; the service starts the work.
  register(api) {
    const options = resolveOptions(api.pluginConfig, process.env);
    const logger = api.logger;
    const feed = new DriveFeed({ ...options, client: CLIENT, logger });
    api.registerService({
      id: SERVICE_ID,
      start: () => feed.start(),
      stop: () => feed.stop(),
    });
    const stateDir = () => api.runtime?.state?.resolveStateDir?.(process.env) ?? openclawStateDir();
    // The hook called may be another registration's: it asks for whichever feed runs.
    const liveFeed = () => runningFeed(options);
    const hook = createPromptHook({ liveFeed, options, stateDir, client: CLIENT, logger });
    api.on("before_prompt_build", hook, { timeoutMs: options.timeoutMs + HOOK_TIMEOUT_MARGIN_MS });
  },
});
