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
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (!isObject(value) || !isObject(value.drives)) {
    throw new Error(`${source}: not a drive state (no 'drives' object)`);
  }
  return value;
}
