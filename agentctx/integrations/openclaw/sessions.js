// What each OpenClaw session was last shown, so that by default a prompt gets the
// drive block only when something changed since: a drive's band moved, or a drive
// was satisfied, bumped or reset (its last_event). The notion of "changed" is
// agentctx/cli/cursor.py's, for `agentctx context --changes-only`.
//
// One small file per session under <OpenClaw state dir>/plugins-state/agentctx/,
// so a Gateway restart does not re-inject unchanged blocks. (OpenClaw's per-plugin
// store, api.runtime.state.openKeyedStore, refuses linked plugins.)

import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

export const MEMORY_TTL_MS = 7 * 86400 * 1000; // a session idle this long is forgotten
export const PRUNE_EVERY_MS = 3600 * 1000;
const SAFE_NAME = /^[A-Za-z0-9_.-]{1,80}$/;
const HASHED_NAME_CHARS = 32;
const PRUNE_MARKER = ".pruned";
const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;

/** The bands and last events of every drive: what "changed" compares. */
export function summary(state) {
  const bands = {};
  const events = {};
  for (const [name, drive] of Object.entries(state.drives)) {
    bands[name] = drive.band ?? null;
    events[name] = drive.last_event ?? null;
  }
  return { bands, events };
}

function sameMap(a, b) {
  if (a === null || typeof a !== "object" || b === null || typeof b !== "object") return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

/** True when a band moved or a drive was satisfied/bumped/reset since *memory*. */
export function changedSince(state, memory) {
  if (memory === null) return true;
  const now = summary(state);
  return !sameMap(now.bands, memory.bands) || !sameMap(now.events, memory.events);
}

export class SessionMemory {
  #lastPrune = 0;

  constructor(directory) {
    this.directory = directory;
  }

  #path(session) {
    const name =
      SAFE_NAME.test(session) && !session.startsWith(".")
        ? session // OpenClaw session ids are UUIDs: the usual case
        : crypto.createHash("sha256").update(session).digest("hex").slice(0, HASHED_NAME_CHARS);
    return path.join(this.directory, `${name}.json`);
  }

  /** What *session* was last shown, or null (never, or a damaged file: one extra block). */
  load(session) {
    try {
      const value = JSON.parse(fs.readFileSync(this.#path(session), "utf8"));
      return value !== null && typeof value === "object" ? value : null;
    } catch {
      return null;
    }
  }

  /** Remember that *session* was shown *state* (written atomically: temp file, rename). */
  save(session, state) {
    fs.mkdirSync(this.directory, { recursive: true, mode: PRIVATE_DIR });
    const target = this.#path(session);
    const temp = `${target}.${process.pid}.tmp`;
    const body = { ...summary(state), seq: state.seq, saved_at: Date.now() / 1000 };
    fs.writeFileSync(temp, JSON.stringify(body), { mode: PRIVATE_FILE });
    fs.renameSync(temp, target);
    this.#prune();
  }

  /** Forget sessions idle for MEMORY_TTL_MS; at most once per PRUNE_EVERY_MS, across restarts. */
  #prune() {
    const now = Date.now();
    if (now - this.#lastPrune < PRUNE_EVERY_MS) return;
    this.#lastPrune = now;
    const marker = path.join(this.directory, PRUNE_MARKER);
    try {
      if (now - fs.statSync(marker).mtimeMs < PRUNE_EVERY_MS) return;
    } catch {
      // never pruned here yet
    }
    fs.writeFileSync(marker, "");
    for (const entry of fs.readdirSync(this.directory)) {
      if (!entry.endsWith(".json")) continue;
      const file = path.join(this.directory, entry);
      try {
        if (now - fs.statSync(file).mtimeMs > MEMORY_TTL_MS) fs.unlinkSync(file);
      } catch {
        // gone meanwhile
      }
    }
  }
}
