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
// An ISO-8601 time as the daemon writes it (datetime.isoformat()), and the other
// extended forms datetime.fromisoformat() reads: date, optional time, optional offset.
const ISO_TIME = new RegExp(
  "^(\\d{4})-(\\d{2})-(\\d{2})" + // date
    "(?:[T ](\\d{2})(?::(\\d{2})(?::(\\d{2})(?:[.,](\\d+))?)?)?)?" + // [time[:min[:sec[.frac]]]]
    "(Z|[+-]\\d{2}(?::?\\d{2}(?::?\\d{2})?)?)?$", // [offset]
);
const MICROS = 1_000_000;

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
  const where = state.source === "socket" ? "live" : "from the snapshot file";
  if (state.clockAheadS > FUTURE_TOLERANCE_S) {
    return (
      `⚠ STALE: ${where}, stamped ${age(state.clockAheadS)} in the future ` +
      "(the clock was changed); its age is unknown, numbers may be out of date"
    );
  }
  const text = `${where}, ${age(state.ageS)} old`;
  return state.stale ? `⚠ STALE: ${text}; the sidecar looks down, numbers may be out of date` : text;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (exact integer arithmetic). */
function daysFromCivil(year, month, day) {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function validDate(year, month, day) {
  const lengths = [31, year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28,
    31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  return year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= lengths[month - 1];
}

function offsetSeconds(text) {
  if (text === "Z") return 0;
  const digits = text.slice(1).replaceAll(":", "");
  const [hours, minutes, seconds] = [0, 2, 4].map((at) => Number(digits.slice(at, at + 2) || 0));
  const total = hours * 3600 + minutes * 60 + seconds;
  return text[0] === "-" ? -total : total;
}

/**
 * An ISO-8601 time from the state as a Unix time, as datetime.fromisoformat(text)
 * .timestamp() computes it (microseconds, then one division); null if absent or
 * unreadable. A time without an offset is local time, as in Python.
 */
export function instant(text) {
  if (typeof text !== "string" || text === "") return null;
  const m = ISO_TIME.exec(text);
  if (m === null) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((v) => Number(v ?? 0));
  if (!validDate(year, month, day) || hour > 23 || minute > 59 || second > 59) return null;
  const micros = Number((m[7] ?? "").slice(0, 6).padEnd(6, "0"));
  let seconds;
  if (m[8] === undefined) {
    seconds = new Date(year, month - 1, day, hour, minute, second).getTime() / 1000;
  } else {
    seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    seconds -= offsetSeconds(m[8]);
  }
  return (seconds * MICROS + micros) / MICROS;
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

function driveLine(name, d, withDescription, tickTs) {
  const band = d.band === undefined ? "?" : str(d.band);
  const mark = MARK.get(d.band) ?? CALM_MARK;
  let line = `${mark} ${name}: ${level(d)} (${percent(d)}%, ${band})`;
  if (d.status === "satisfied") {
    const when = instant(d.last_satisfied);
    const since = tickTs - when; // Python's max(0.0, since), NaN included
    const ago = when !== null ? ` ${age(since > 0 ? since : 0.0)} ago` : "";
    line += ` ✓ satisfied${ago}`;
  }
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
      lines.push(driveLine(name, d, descriptions, state.tickTs));
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
