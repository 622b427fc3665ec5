// The per-session memory: "changed" means what agentctx/cli/cursor.py means, and the
// memory lives in small files that survive a restart.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";

import { SessionMemory, changedSince } from "../../agentctx/integrations/openclaw/sessions.js";
import { DriveState } from "../../agentctx/integrations/openclaw/state.js";

function state(drives, seq = 1) {
  return new DriveState({ seq, tick_ts: 0, drives }, "socket", 0);
}

const calm = { CARE: { band: "latent", last_event: null, pressure: 1 } };

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), "agentctx-sessions-"));
}

test("only a band move or a satisfy/bump/reset is a change; pressure alone is not", () => {
  const memory = tempDir();
  const sessions = new SessionMemory(memory);
  assert.equal(changedSince(state(calm), sessions.load("s1")), true, "never shown: a change");
  sessions.save("s1", state(calm));
  const grown = { CARE: { ...calm.CARE, pressure: 2 } };
  assert.equal(changedSince(state(grown, 2), sessions.load("s1")), false);
  const moved = { CARE: { ...calm.CARE, band: "available" } };
  assert.equal(changedSince(state(moved, 3), sessions.load("s1")), true);
  const bumped = { CARE: { ...calm.CARE, last_event: "2026-11-25T22:16:40+00:00" } };
  assert.equal(changedSince(state(bumped, 4), sessions.load("s1")), true);
  const added = { ...calm, REST: { band: "latent", last_event: null } };
  assert.equal(changedSince(state(added, 5), sessions.load("s1")), true);
  assert.equal(changedSince(state({}, 6), sessions.load("s1")), true);
});

test("a new memory on the same directory (a restart) remembers; sessions are apart", () => {
  const memory = tempDir();
  new SessionMemory(memory).save("0b9d4a3e-1c55-4f0e-8f2a-54c1d7e0a2b3", state(calm));
  const restarted = new SessionMemory(memory);
  assert.equal(changedSince(state(calm), restarted.load("0b9d4a3e-1c55-4f0e-8f2a-54c1d7e0a2b3")), false);
  assert.equal(restarted.load("another"), null);
});

test("odd session keys become hashed file names inside the directory", () => {
  const memory = tempDir();
  const sessions = new SessionMemory(memory);
  for (const key of ["agent:main:main", "../../escape", ".hidden", "x".repeat(200)]) {
    sessions.save(key, state(calm));
    assert.notEqual(sessions.load(key), null, key);
  }
  const files = fs.readdirSync(memory).filter((f) => f.endsWith(".json"));
  assert.equal(files.length, 4);
  assert.ok(files.every((f) => /^[0-9a-f]{32}\.json$/.test(f)), files.join(" "));
});

test("a damaged memory file means one block too many, never an error", () => {
  const memory = tempDir();
  const sessions = new SessionMemory(memory);
  sessions.save("s1", state(calm));
  fs.writeFileSync(path.join(memory, "s1.json"), "{not json");
  assert.equal(sessions.load("s1"), null);
  assert.equal(changedSince(state(calm), sessions.load("s1")), true);
});

test("sessions idle for a week are forgotten, at most one pruning an hour", () => {
  const memory = tempDir();
  const sessions = new SessionMemory(memory);
  sessions.save("old", state(calm)); // prunes (nothing yet) and marks the time
  const weeksAgo = new Date(Date.now() - 8 * 86400 * 1000);
  fs.utimesSync(path.join(memory, "old.json"), weeksAgo, weeksAgo);
  new SessionMemory(memory).save("new", state(calm)); // another process, within the hour
  assert.notEqual(sessions.load("old"), null, "pruned twice within an hour");
  const hoursAgo = new Date(Date.now() - 2 * 3600 * 1000);
  fs.utimesSync(path.join(memory, ".pruned"), hoursAgo, hoursAgo);
  new SessionMemory(memory).save("new", state(calm));
  assert.equal(sessions.load("old"), null);
  assert.notEqual(sessions.load("new"), null);
});
