// The before_prompt_build hook: the drive block in front of the prompt
// ({prependContext}), by default only when something changed since the session's
// last block. It never throws into OpenClaw: any failure is logged and the prompt
// goes out without a block.

import path from "node:path";

import { readOnce } from "./oneshot.js";
import { markdown } from "./render.js";
import { SessionMemory, changedSince } from "./sessions.js";

export const MEMORY_DIR = path.join("plugins-state", "agentctx", "sessions");

function why(error) {
  return String(error?.message ?? error);
}

/** The session a prompt belongs to: its id (a reset session is a new one), else its key. */
function sessionOf(ctx) {
  for (const value of [ctx?.sessionId, ctx?.sessionKey]) {
    if (typeof value === "string" && value !== "") return value;
  }
  return null;
}

/**
 * @param {object} parts
 * @param {() => object|null} parts.liveFeed the running service's subscription, if any
 * @param {object} parts.options resolved options (options.js)
 * @param {() => string} parts.stateDir OpenClaw's state directory, asked at the first prompt
 * @param {string} parts.client our name in the sidecar's `hello`
 * @param {object} parts.logger OpenClaw's plugin logger
 */
export function createPromptHook({ liveFeed, options, stateDir, client, logger }) {
  let memory = null;
  return async function beforePromptBuild(_event, ctx) {
    try {
      // The service's live state when it runs and has one; else one read of our own
      // (`openclaw agent --local` starts no services).
      const state = liveFeed()?.current() ?? (await readOnce(options, client));
      if (state === null) {
        const { socketPath, snapshotPath } = options;
        logger.debug?.(`agentctx: no drive state (no sidecar at ${socketPath}, no ${snapshotPath})`);
        return undefined;
      }
      const session = sessionOf(ctx);
      memory ??= new SessionMemory(path.join(stateDir(), MEMORY_DIR));
      if (options.mode === "changes" && session !== null && !changedSince(state, memory.load(session))) {
        return undefined;
      }
      const block = markdown(state, options.maxChars);
      if (session !== null) {
        try {
          memory.save(session, state);
        } catch (error) {
          const what = `could not remember this session's block (${why(error)})`;
          logger.warn(`agentctx: ${what}; the next prompt repeats it`);
        }
      }
      return block === "" ? undefined : { prependContext: block };
    } catch (error) {
      logger.warn(`agentctx: no drive block this turn: ${why(error)}`);
      return undefined;
    }
  };
}
