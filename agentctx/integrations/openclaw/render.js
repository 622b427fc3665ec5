// The drive block, character for character what `agentctx context` prints for the
// same state: a line-by-line port of markdown() in agentctx/render.py. The golden
// files in tests/golden/render/ hold both to it (tests/js/render.test.mjs here,
// tests/test_openclaw_render.py there): change one renderer, change both and
// regenerate the goldens.

import {
  charCount,
  firstLine,
  fixed,
  general,
  roundHalfEven,
  str,
  strip,
  toFloat,
  truthy,
} from "./pyformat.js";
import { FUTURE_TOLERANCE_S } from "./state.js";

export const DEFAULT_MAX_CHARS = 2000;
const HOT = new Set(["triggered", "crisis", "emergency"]);
const MARK = new Map([
  ["emergency", "🔴"],
  ["crisis", "🔴"],
  ["triggered", "🔴"],
  ["elevated", "🟡"],
]);
const CALM_MARK = "🟢";
const ELLIPSIS = "…";

function isHot(drive) {
  return HOT.has(drive.band);
}

/** Triggered (and worse) drives first, then by ratio, highest first (a stable sort). */
export function byUrgency(state) {
  const key = ([, d]) => [!isHot(d), -toFloat(d.ratio)];
  return Object.entries(state.drives)
    .map((entry) => ({ entry, key: key(entry) }))
    .sort((a, b) => {
      for (let i = 0; i < a.key.length; i += 1) {
        if (a.key[i] < b.key[i]) return -1;
        if (a.key[i] > b.key[i]) return 1;
      }
      return 0;
    })
    .map(({ entry }) => entry);
}

function age(seconds) {
  if (seconds < 10) return `${fixed(seconds, 1)}s`;
  if (seconds < 120) return `${fixed(seconds, 0)}s`;
  if (seconds < 7200) return `${fixed(seconds / 60, 0)}min`;
  return `${fixed(seconds / 3600, 1)}h`;
}

/** Where the state came from and how old it is, said plainly when it may be stale. */
export function freshness(state) {
  const where = state.source === "socket" ? "live from the socket" : "from the snapshot file";
  if (state.clockAheadS > FUTURE_TOLERANCE_S) {
    return (
      `⚠ STALE: ${where}, stamped ${age(state.clockAheadS)} in the future ` +
      "(the clock was changed); its age is unknown, numbers may be out of date"
    );
  }
  const text = `${where}, ${age(state.ageS)} old`;
  return state.stale ? `⚠ STALE: ${text}; the sidecar looks down, numbers may be out of date` : text;
}

/** The time of day of an ISO-8601 UTC instant from the state (" at 09:41:07 UTC"), or "". */
function clock(text) {
  const utc = typeof text === "string" && text.length >= 19 && text[10] === "T";
  return utc && text.endsWith("+00:00") ? ` at ${text.slice(11, 19)} UTC` : "";
}

function num(x) {
  return fixed(toFloat(x), 1);
}

/** "pressure/threshold", e.g. "13.7/20" */
function level(drive) {
  return `${num(drive.pressure)}/${general(toFloat(drive.threshold))}`;
}

function percent(drive) {
  return roundHalfEven(toFloat(drive.ratio) * 100);
}

function driveLine(name, d, withDescription) {
  const band = d.band === undefined ? "?" : str(d.band);
  const mark = MARK.get(d.band) ?? CALM_MARK;
  let line = `${mark} ${name}: ${level(d)} (${percent(d)}%, ${band})`;
  // when, not "just": a shallow satisfaction can leave the drive elevated
  if (d.status === "satisfied") line += ` ✓ satisfied${clock(d.last_satisfied)}`;
  if (withDescription && truthy(d.description)) line += ` — ${str(d.description)}`;
  return line;
}

/** As many whole lines as fit, then "…" (if even that fits). */
function wholeLines(lines, maxChars) {
  const kept = [];
  let size = 0;
  for (const line of lines) {
    const extra = charCount(line) + (kept.length > 0 ? 1 : 0);
    if (size + extra + charCount(`\n${ELLIPSIS}`) > maxChars) break;
    kept.push(line);
    size += extra;
  }
  kept.push(ELLIPSIS);
  const text = kept.join("\n");
  return charCount(text) <= maxChars ? text : "";
}

/**
 * The DRIVES.md-style block, at most *maxChars* characters (code points, as in Python).
 * To fit, it drops detail in this order: descriptions, the list lines of the least
 * urgent drives (triggered ones stay named in their own section), the triggered
 * drives' prompts; and only then whole lines from the end. It never cuts a line.
 */
export function markdown(state, maxChars = DEFAULT_MAX_CHARS) {
  const drives = byUrgency(state);
  const hot = drives.filter(([, d]) => isHot(d));
  const lastTick = state.data.last_tick === undefined ? "" : str(state.data.last_tick);
  const summary = `*${drives.length} drives, updated ${lastTick} (${freshness(state)})*`;
  const head = ["## Drives State", summary, ""];

  const build = (prompts, descriptions, keep) => {
    const lines = [...head];
    if (hot.length > 0) {
      lines.push("**🔥 Triggered:**");
      for (const [name, d] of hot) {
        let item = `- **${name}** at ${percent(d)}% (${level(d)})`;
        const prompt = strip(truthy(d.prompt) ? str(d.prompt) : "");
        if (prompts && prompt) item += ` — ${firstLine(prompt)}`;
        lines.push(item);
      }
      lines.push("");
    }
    for (const [name, d] of drives.slice(0, keep)) {
      lines.push(driveLine(name, d, descriptions));
    }
    if (keep < drives.length) lines.push(`${ELLIPSIS} and ${drives.length - keep} more`);
    return lines;
  };

  const tries = [[true, true, drives.length]];
  for (let keep = drives.length; keep >= 0; keep -= 1) tries.push([true, false, keep]);
  tries.push([false, false, 0]);
  let lines = [];
  for (const [prompts, descriptions, keep] of tries) {
    lines = build(prompts, descriptions, keep);
    const text = lines.join("\n");
    if (charCount(text) <= maxChars) return text;
  }
  return wholeLines(lines, maxChars);
}
