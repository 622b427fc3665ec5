// Which fired triggers the plugin has already woken the agent for, so that a wake is
// neither lost nor repeated. The sidecar stamps each drive's last fired trigger in
// every state (`last_fired`, ISO-8601 UTC); a fire is *new* when it is later than
// the one remembered here for that drive. Comparing the whole state, not only
// listening for `triggered` events, is what finds the fires that happened while the
// gateway was stopped or the subscription was down.
//
// One small file, <OpenClaw state dir>/plugins-state/agentctx/fired.json:
//   {"version": 1, "since": ISO, "fired": {"CARE": ISO | null, ...}}
// `since` is the tick of the first state this memory saw. With no file yet (the
// plugin was just installed) that first state's fires are recorded as handled
// without a wake: installing the plugin must not wake the agent for old fires. A
// drive the memory has never seen (added to the sidecar's config later) counts as
// fired anew only past `since`.

import fs from "node:fs";
import path from "node:path";

export const FIRED_FILE = path.join("plugins-state", "agentctx", "fired.json");
export const FORMAT_VERSION = 1;
// Times are compared in whole microseconds, the state's resolution. The `triggered`
// event carries the same instant as a float of seconds, which can round to the
// neighbouring microsecond: one microsecond apart is the same fire.
export const SAME_FIRE_US = 1;
const US_PER_MS = 1000;
const US_PER_S = 1_000_000;
const MS_PER_S = 1000;
const FRACTION_DIGITS = 6;
const ISO_UTC = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:\d\d)$/;
const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;

/** An ISO-8601 instant from the state (Python's isoformat()) in microseconds, or null. */
export function isoMicros(text) {
  if (typeof text !== "string") return null;
  const match = ISO_UTC.exec(text);
  if (match === null) return null;
  const ms = Date.parse(`${match[1]}${match[3]}`);
  if (Number.isNaN(ms)) return null;
  const fraction = Number((match[2] ?? "").padEnd(FRACTION_DIGITS, "0"));
  return ms * US_PER_MS + fraction;
}

/** Unix seconds (an event's `ts`) in microseconds, rounded as Python's fromtimestamp. */
export function secondsMicros(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return null;
  const whole = Math.floor(seconds);
  return whole * US_PER_S + Math.round((seconds - whole) * US_PER_S);
}

/** Microseconds as the sidecar writes instants: "2026-11-26T05:49:08.765655+00:00". */
export function microsIso(micros) {
  const seconds = Math.floor(micros / US_PER_S);
  const fraction = String(micros - seconds * US_PER_S).padStart(FRACTION_DIGITS, "0");
  return `${new Date(seconds * MS_PER_S).toISOString().slice(0, 19)}.${fraction}+00:00`;
}

/** Whether the fire at *micros* is later than *known* (null: none known). */
export function laterFire(micros, known) {
  return micros !== null && (known === null || micros > known + SAME_FIRE_US);
}

/**
 * The fires in *state* (a DriveState) later than what *memory* (a FiredMemory with a
 * baseline) handled: [{drive, micros, iso}], in the state's drive order.
 */
export function newFires(state, memory) {
  const fires = [];
  for (const [drive, view] of Object.entries(state.drives)) {
    const micros = isoMicros(view?.last_fired);
    if (micros !== null && laterFire(micros, memory.handled(drive))) {
      fires.push({ drive, micros, iso: microsIso(micros) });
    }
  }
  return fires;
}

export class FiredMemory {
  #since = null; // microseconds; null until there is a baseline
  #fired = new Map(); // drive -> microseconds of the last fire handled, or null (never fired)

  /** @param {string} file where the memory lives (FIRED_FILE under OpenClaw's state dir) */
  constructor(file) {
    this.file = file;
  }

  /** Whether a baseline exists (loaded from the file, or made from a first state). */
  get ready() {
    return this.#since !== null;
  }

  /**
   * Read the file. Returns null, or a reason it could not be used: then, as with no
   * file, the next state becomes the baseline (its fires handled without a wake).
   */
  load() {
    let data;
    try {
      data = JSON.parse(fs.readFileSync(this.file, "utf8"));
    } catch (error) {
      return error.code === "ENOENT" ? null : `${this.file}: ${error.code ?? error.message}`;
    }
    const since = isoMicros(data?.since);
    const fired = data?.fired;
    const usable = data?.version === FORMAT_VERSION && since !== null;
    if (!usable || fired === null || typeof fired !== "object") {
      return `${this.file}: not a memory of fired triggers this plugin wrote`;
    }
    this.#since = since;
    this.#fired = new Map(Object.entries(fired).map(([drive, iso]) => [drive, isoMicros(iso)]));
    return null;
  }

  /** The first state seen with no memory yet: every fire in it counts as handled. */
  baseline(state) {
    this.#since = Math.round(state.tickTs * US_PER_S);
    this.#fired = new Map();
    for (const [drive, view] of Object.entries(state.drives)) {
      this.#fired.set(drive, isoMicros(view?.last_fired));
    }
  }

  /** The last fire handled for *drive* in microseconds; `since` for a drive never seen. */
  handled(drive) {
    return this.#fired.has(drive) ? this.#fired.get(drive) : this.#since;
  }

  /** Remember that *drive*'s fire at *micros* was handled (a later one is kept). */
  record(drive, micros) {
    if (laterFire(micros, this.#fired.get(drive) ?? null)) this.#fired.set(drive, micros);
  }

  /**
   * Write the memory: a temp file, fsync, rename, fsync of the directory, so that
   * after a crash or a power cut it is the old memory or the new one, whole.
   */
  save() {
    const directory = path.dirname(this.file);
    fs.mkdirSync(directory, { recursive: true, mode: PRIVATE_DIR });
    const fired = {};
    for (const [drive, micros] of this.#fired) {
      fired[drive] = micros === null ? null : microsIso(micros);
    }
    const body = JSON.stringify({ version: FORMAT_VERSION, since: microsIso(this.#since), fired });
    const temp = `${this.file}.${process.pid}.tmp`;
    const fd = fs.openSync(temp, "w", PRIVATE_FILE);
    try {
      fs.writeFileSync(fd, body);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, this.file);
    const dir = fs.openSync(directory, "r");
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
  }
}
