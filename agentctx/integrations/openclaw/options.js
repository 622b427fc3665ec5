// The plugin's options (plugins.entries.agentctx.config, checked by OpenClaw against
// configSchema in openclaw.plugin.json) with their defaults. The default paths are the
// Python client's (agentctx/_core/paths.py), so the plugin finds the sidecar that
// `agentctx` talks to, from the same environment.

import os from "node:os";
import path from "node:path";

export const APP = "agentctx";
export const SOCKET_NAME = "sidecar.sock";
export const SNAPSHOT_NAME = "drives-state.json";
export const MODES = ["changes", "always"];
// OpenClaw does not keep prependContext in the session's history: a block given only
// on a change would be gone from the model's view on the next turn. So: every turn.
export const DEFAULT_MODE = "always";
export const DEFAULT_MAX_CHARS = 2000; // as `agentctx context --max-chars`
// The hook's own read (no service running, or no state yet): the socket's answer is
// awaited this long before the snapshot file is read instead.
export const DEFAULT_TIMEOUT_MS = 250;
export const MAX_TIMEOUT_MS = 10_000;
// A fired trigger wakes the agent (wake.js) unless `wake: false`; in this session,
// or when none is given (null) in OpenClaw's main session, asked of OpenClaw then.
export const DEFAULT_WAKE = true;
export const DEFAULT_SESSION_KEY = null;

/** An environment variable, an empty one counting as unset (as in paths.py). */
function fromEnv(env, name) {
  const value = env[name];
  return value ? value : null;
}

// A named agent's files are in NAME/ (paths.py). A name that is not one points at a
// directory no agent can have (no name holds a dot): no state, never another's files.
const AGENT_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const NO_AGENT = ".invalid-agent-name";

/** `$AGENTCTX_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/agentctx`, else `/tmp/agentctx-UID`;
 * with `$AGENTCTX_AGENT` set, that agent's `NAME/` in it. */
export function runtimeDir(env = process.env) {
  const agent = fromEnv(env, "AGENTCTX_AGENT");
  const base = baseRuntimeDir(env);
  if (!agent) return base;
  return path.join(base, AGENT_NAME.test(agent) ? agent : NO_AGENT);
}

function baseRuntimeDir(env) {
  const explicit = fromEnv(env, "AGENTCTX_RUNTIME_DIR");
  if (explicit) return explicit;
  const xdg = fromEnv(env, "XDG_RUNTIME_DIR");
  if (xdg) return path.join(xdg, APP);
  return path.join("/tmp", `${APP}-${process.getuid()}`);
}

/** OpenClaw's state directory, where the plugin keeps its per-session memory. */
export function openclawStateDir(env = process.env) {
  const explicit = fromEnv(env, "OPENCLAW_STATE_DIR");
  return explicit ? path.resolve(explicit) : path.join(os.homedir(), ".openclaw");
}

function integer(value, fallback, min, max) {
  return Number.isInteger(value) && value >= min && value <= max ? value : fallback;
}

/**
 * Every option with its default filled in. *config* was validated by OpenClaw, but a
 * bad value still falls back to the default here rather than break a prompt.
 */
export function resolveOptions(config, env = process.env) {
  const given = config !== null && typeof config === "object" ? config : {};
  const text = (value) => (typeof value === "string" && value !== "" ? value : null);
  return {
    socketPath: text(given.socketPath) ?? path.join(runtimeDir(env), SOCKET_NAME),
    snapshotPath: text(given.snapshotPath) ?? path.join(runtimeDir(env), SNAPSHOT_NAME),
    mode: MODES.includes(given.mode) ? given.mode : DEFAULT_MODE,
    maxChars: integer(given.maxChars, DEFAULT_MAX_CHARS, 0, Number.MAX_SAFE_INTEGER),
    timeoutMs: integer(given.timeoutMs, DEFAULT_TIMEOUT_MS, 1, MAX_TIMEOUT_MS),
    wake: typeof given.wake === "boolean" ? given.wake : DEFAULT_WAKE,
    sessionKey: text(given.sessionKey) ?? DEFAULT_SESSION_KEY,
  };
}
