// The drive state once, for a prompt that finds no live subscription to ask (under
// `openclaw agent --local` no plugin service runs): the socket first, the snapshot
// file when no sidecar answers in time. agentctx/oneshot.py (read()) in JavaScript.

import { readSnapshot } from "./snapshot.js";
import { DriveState } from "./state.js";
import { requestState } from "./wire.js";

/**
 * The current state, or null when neither the socket nor the snapshot file has one.
 * Throws (a one-line Error) only when the snapshot is there but unreadable.
 */
export async function readOnce({ socketPath, snapshotPath, timeoutMs }, client) {
  try {
    const message = await requestState(socketPath, timeoutMs, client);
    if (message.drives !== null && typeof message.drives === "object") {
      return new DriveState(message, "socket");
    }
  } catch {
    // no sidecar answering: the snapshot file is the answer
  }
  const snapshot = readSnapshot(snapshotPath);
  return snapshot === null ? null : new DriveState(snapshot.data, "file");
}
