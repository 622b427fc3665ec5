// The plugin service's one live subscription to the sidecar, agentctx/subscription.py
// in JavaScript. Live, it reads the daemon's socket (every tick and every event is
// pushed). When the socket goes away, or stays silent past a few tick intervals, it
// follows the snapshot file instead: a watch on the *directory* (a watch on the file
// itself dies with the first atomic rename) plus a slow backstop re-read, while it
// keeps trying the socket with backoff. It never adopts an older state than one it
// has (DriveState.newerThan), across socket/file switches and daemon restarts.
//
// Events: "state" (a DriveState, only newer ones), "event" (a wire `event` message:
// band_changed, satisfied, bumped, reset), "mode" (mode, reason) on each switch
// between "live" and "fallback". Waking the agent on a trigger listens to "event".

import { EventEmitter } from "node:events";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

import { readSnapshot, signatureOf } from "./snapshot.js";
import { DriveState, STALE_MIN_S, STALE_TICKS } from "./state.js";
import { FrameDecoder, checkSocket, helloFrame } from "./wire.js";

export const RECONNECT_MIN_MS = 50;
export const RECONNECT_MAX_MS = 2000;
export const BACKSTOP_MS = 1000; // re-read the snapshot at least this often while following it
// With socket activation connect() succeeds while the daemon is down: silence after
// connecting, not a refused connect, is what says "down".
export const WELCOME_TIMEOUT_MS = 1000;
const MS = 1000;
// OpenClaw registers a plugin several times in one process, each time from its own
// copy of the module: a "full" registration, whose service is the one started, and
// discovery passes, whose hooks may be the ones called. A module variable is not
// shared between those copies; this process-wide registry is.
const RUNNING = Symbol.for("agentctx.openclaw.running-feeds");

function runningFeeds() {
  globalThis[RUNNING] ??= new Map();
  return globalThis[RUNNING];
}

function feedKey(socketPath, snapshotPath) {
  return `${socketPath}\0${snapshotPath}`;
}

/** The started feed for these paths in this process (any registration's), or null. */
export function runningFeed({ socketPath, snapshotPath }) {
  return runningFeeds().get(feedKey(socketPath, snapshotPath)) ?? null;
}

export class DriveFeed extends EventEmitter {
  #state = null;
  #socket = null;
  #retryTimer = null;
  #delayMs = RECONNECT_MIN_MS;
  #watcher = null;
  #backstopTimer = null;
  #fileSignature = null;
  #fileProblem = null;

  /** @param {{socketPath: string, snapshotPath: string, client: string, logger: object}} options */
  constructor({ socketPath, snapshotPath, client, logger }) {
    super();
    this.socketPath = socketPath;
    this.snapshotPath = snapshotPath;
    this.client = client;
    this.logger = logger;
    this.mode = "stopped"; // "starting", "live", "fallback"
  }

  start() {
    if (this.mode !== "stopped") return;
    this.mode = "starting";
    runningFeeds().set(feedKey(this.socketPath, this.snapshotPath), this);
    this.#connect();
  }

  stop() {
    const key = feedKey(this.socketPath, this.snapshotPath);
    if (runningFeeds().get(key) === this) runningFeeds().delete(key);
    this.mode = "stopped";
    clearTimeout(this.#retryTimer);
    this.#socket?.destroy();
    this.#socket = null;
    this.#stopFollowing();
  }

  /**
   * The newest state as a prompt should see it now: live while connected, else as the
   * snapshot's (which holds the same state), its age counted to *now*. Null when the
   * feed is not running or has no state yet.
   */
  current(now = Date.now() / MS) {
    if (this.mode === "stopped" || this.#state === null) return null;
    return this.#state.as(this.mode === "live" ? "socket" : "file", now);
  }

  #adopt(data, source) {
    const state = new DriveState(data, source);
    if (!state.newerThan(this.#state)) return;
    this.#state = state;
    this.emit("state", state);
  }

  #setMode(mode, reason) {
    this.mode = mode;
    this.logger.info(`agentctx: ${mode === "live" ? "live" : "following the snapshot file"}: ${reason}`);
    this.emit("mode", mode, reason);
  }

  // --- the socket --------------------------------------------------------------

  #connect() {
    if (this.mode === "stopped") return;
    try {
      checkSocket(this.socketPath);
    } catch (error) {
      this.#lost(error.message);
      return;
    }
    const socket = net.createConnection(this.socketPath);
    socket.unref(); // never what keeps a process alive
    this.#socket = socket;
    const decoder = new FrameDecoder();
    let silenceMs = WELCOME_TIMEOUT_MS;
    let lastFrame = Date.now();
    let timer;
    // One timer per silence period, re-armed for what is left of it, not one per frame.
    const watchdog = () => {
      const idle = Date.now() - lastFrame;
      if (idle >= silenceMs) drop(`${this.socketPath}: no answer for ${silenceMs / MS} s`);
      else timer = setTimeout(watchdog, silenceMs - idle).unref();
    };
    timer = setTimeout(watchdog, silenceMs).unref();
    const drop = (reason) => {
      if (this.#socket !== socket) return; // already dropped (an error is followed by close)
      clearTimeout(timer);
      socket.destroy();
      this.#socket = null;
      this.#lost(reason);
    };
    socket.on("connect", () => socket.write(helloFrame(this.client, true)));
    socket.on("error", (error) => drop(`${this.socketPath}: ${error.code ?? error.message}`));
    socket.on("close", () => drop(`${this.socketPath}: the sidecar closed the connection`));
    socket.on("data", (chunk) => {
      lastFrame = Date.now();
      let messages;
      try {
        messages = decoder.feed(chunk);
      } catch (error) {
        drop(`${this.socketPath}: ${error.message}`);
        return;
      }
      for (const message of messages) {
        if (message.type === "welcome") {
          // a hung daemon is a down daemon: silent for a few ticks
          silenceMs = Math.max(STALE_TICKS * Number(message.tick_interval ?? 1), STALE_MIN_S) * MS;
        } else if (message.type === "state") {
          this.#adopt(message, "socket");
          if (this.mode !== "live") this.#live();
        } else if (message.type === "event") {
          this.emit("event", message);
        } else if (message.type === "error") {
          drop(`${this.socketPath}: ${message.code}: ${message.message}`);
          return;
        }
      }
    });
  }

  #live() {
    this.#delayMs = RECONNECT_MIN_MS;
    this.#stopFollowing();
    this.#setMode("live", `${this.socketPath} (seq ${this.#state.seq})`);
  }

  #lost(reason) {
    if (this.mode === "stopped") return;
    if (this.mode !== "fallback") {
      this.#setMode("fallback", reason);
      this.#followFile();
    }
    this.#retryTimer = setTimeout(() => this.#connect(), this.#delayMs).unref();
    this.#delayMs = Math.min(this.#delayMs * 2, RECONNECT_MAX_MS);
  }

  // --- the snapshot file -------------------------------------------------------

  #followFile() {
    this.#fileSignature = null;
    this.#readFile();
    this.#watchDirectory();
    this.#backstopTimer = setInterval(() => {
      if (this.#watcher === null) this.#watchDirectory(); // the directory may exist by now
      this.#readFile();
    }, BACKSTOP_MS).unref();
  }

  #watchDirectory() {
    const name = path.basename(this.snapshotPath);
    try {
      const watcher = fs.watch(path.dirname(this.snapshotPath), { persistent: false }, (_kind, file) => {
        if (file === null || String(file) === name) this.#readFile();
      });
      watcher.on("error", () => {
        watcher.close(); // the directory went away; the backstop watches again once it is back
        if (this.#watcher === watcher) this.#watcher = null;
      });
      this.#watcher = watcher;
    } catch {
      return; // no directory (yet): the backstop polls meanwhile
    }
    this.#readFile(); // a change between the first read and the watch
  }

  #stopFollowing() {
    clearInterval(this.#backstopTimer);
    this.#backstopTimer = null;
    this.#watcher?.close();
    this.#watcher = null;
  }

  /** Read the snapshot unless it is the one already read (same inode and mtime). */
  #readFile() {
    const signature = signatureOf(this.snapshotPath);
    if (signature !== null && signature === this.#fileSignature) return;
    try {
      const snapshot = readSnapshot(this.snapshotPath);
      this.#fileSignature = snapshot?.signature ?? null;
      this.#fileProblem = null;
      if (snapshot !== null) this.#adopt(snapshot.data, "file");
    } catch (error) {
      if (error.message !== this.#fileProblem) this.logger.warn(`agentctx: ${error.message}`);
      this.#fileProblem = error.message; // said once, not at every backstop
    }
  }
}
