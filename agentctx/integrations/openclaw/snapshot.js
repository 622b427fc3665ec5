// Reading the sidecar's snapshot file (drives-state.json), as agentctx/_core/files.py
// and snapshot.py do: never through a symlink, never blocking on a FIFO planted at
// the path, only a regular file, and never more than a sane size.

import fs from "node:fs";

export const MAX_STATE_FILE = 16 << 20; // a state is a few KiB; refuse to slurp anything absurd
const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/**
 * The snapshot at *path*: `{data, signature}`, or null when there is no file. The
 * signature (inode and mtime) tells a re-read whether the file changed. Throws an
 * Error with a one-line message when the file is there but unusable.
 */
export function readSnapshot(path) {
  let fd;
  try {
    fd = fs.openSync(path, OPEN_FLAGS);
  } catch (error) {
    if (error.code === "ENOENT") return null;
    throw new Error(`${path}: cannot open: ${error.code ?? error.message}`);
  }
  try {
    const stat = fs.fstatSync(fd, { bigint: true });
    if (!stat.isFile()) throw new Error(`${path}: not a regular file; refusing to read it`);
    // one byte more than the file's size (or the limit) shows a file that is too big
    const buffer = Buffer.alloc(Math.min(Number(stat.size) + 1, MAX_STATE_FILE + 1));
    let length = 0;
    while (length < buffer.length) {
      const got = fs.readSync(fd, buffer, length, buffer.length - length, length);
      if (got === 0) break;
      length += got;
    }
    if (length > MAX_STATE_FILE) throw new Error(`${path}: larger than ${MAX_STATE_FILE} bytes`);
    const data = parseState(buffer.subarray(0, length), path);
    return { data, signature: `${stat.ino}:${stat.mtimeNs}` };
  } finally {
    fs.closeSync(fd);
  }
}

/** The inode:mtime signature of *path*, or null if it is not there. */
export function signatureOf(path) {
  try {
    const stat = fs.statSync(path, { bigint: true });
    return `${stat.ino}:${stat.mtimeNs}`;
  } catch {
    return null;
  }
}

/** Bytes of a snapshot or a `state` frame as an object; an Error naming *source* if not a state. */
export function parseState(bytes, source) {
  let value;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new Error(`${source}: not valid JSON (${error.message})`);
  }
  if (!isObject(value) || !isObject(value.drives)) {
    throw new Error(`${source}: not a drive state (no 'drives' object)`);
  }
  let problem = check(value, STATE_FIELDS, "");
  for (const [name, drive] of Object.entries(value.drives)) {
    if (problem) break;
    problem = isObject(drive)
      ? check(drive, DRIVE_FIELDS, `drives.${name}.`)
      : `drives.${name}: expected an object, got ${shown(drive)}`;
  }
  if (problem) throw new Error(`${source}: not a drive state (${problem})`);
  return value;
}

// The fields a reader relies on and the JSON types each may have, as
// agentctx/_core/snapshot.py checks them: a file written by anything but the daemon (a
// hand edit, another tool) is refused in one line, never shown as a block of zeros.
// Absent is fine (older and emergence-written files lack some).
const NUMBER = "a number";
const INTEGER = "an integer";
const TEXT = "a string";
const OPTIONAL_TEXT = "a string or null";
const BOOL = "true or false";
const STATE_FIELDS = {
  seq: INTEGER,
  tick_ts: NUMBER,
  tick_interval: NUMBER,
  last_tick: TEXT,
  boot_id: TEXT,
  stale: BOOL,
  origin: OPTIONAL_TEXT,
};
const DRIVE_FIELDS = {
  pressure: NUMBER,
  threshold: NUMBER,
  ratio: NUMBER,
  max_pressure: NUMBER,
  rate_per_hour: NUMBER,
  status: TEXT,
  band: TEXT,
  description: TEXT,
  prompt: TEXT,
  activity_driven: BOOL,
  last_triggered: OPTIONAL_TEXT,
  last_satisfied: OPTIONAL_TEXT,
  last_event: OPTIONAL_TEXT,
  last_fired: OPTIONAL_TEXT,
};
const ACCEPTS = {
  [NUMBER]: (v) => typeof v === "number",
  // JSON.parse reads 3.0 as 3: an integral number is all this can check
  [INTEGER]: (v) => Number.isInteger(v),
  [TEXT]: (v) => typeof v === "string",
  [OPTIONAL_TEXT]: (v) => v === null || typeof v === "string",
  [BOOL]: (v) => typeof v === "boolean",
};

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The first field of *obj* whose value is not of its kind, described; else "". */
function check(obj, fields, prefix) {
  for (const [key, kind] of Object.entries(fields)) {
    if (Object.hasOwn(obj, key) && !ACCEPTS[kind](obj[key])) {
      return `${prefix}${key}: expected ${kind}, got ${shown(obj[key])}`;
    }
  }
  return "";
}

/** A value as JSON, cut to 40 characters (the error stays one line). */
function shown(value) {
  return JSON.stringify(value).slice(0, 40);
}
