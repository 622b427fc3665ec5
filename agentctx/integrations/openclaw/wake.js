// The OpenClaw wake: when a drive's trigger fires in the sidecar, the agent gets a
// turn with the drive's prompt. The service's feed (feed.js) hands us every state
// and every wire event; a fire is found in either (the `triggered` event, or a
// drive's `last_fired` moving in a state), checked against the memory of fires
// already handled (fired.js), and woken for once:
//
//   1. enqueueSystemEvent(text, {sessionKey, contextKey: "agentctx:DRIVE", replace}):
//      OpenClaw puts the text in front of the session's next turn (as data, so the
//      text states a fact and carries the prompt);
//   2. requestHeartbeat({source: "hook", intent: "immediate", ...}): that turn, now.
//
// A fire counts as handled only once its system event has left OpenClaw's queue
// (a turn took it): the queue lives in the gateway's memory, so an event still
// waiting when the gateway stops is lost with it, and the restarted plugin, finding
// the fire unhandled, queues it again. Nothing here ever throws into OpenClaw: a
// failure is logged and tried again later.

import { FiredMemory, laterFire, microsIso, newFires, secondsMicros } from "./fired.js";
import { fixed, general, strip, toFloat } from "./pyformat.js";

export const CONTEXT_PREFIX = "agentctx:";
// Why "hook" and not "other": OpenClaw drops a wake whose source is "other" (without
// a word: enqueueSystemEvent still returns true) when the agent's heartbeat cadence is
// off (heartbeat.every "0m"), and sends it through the HEARTBEAT.md gates (an empty
// file skips the turn). A targeted "hook" wake with intent "immediate" and a reason
// starting "hook:" is on OpenClaw's allow-list: it runs under every heartbeat config.
export const WAKE_SOURCE = "hook";
export const WAKE_REASON_PREFIX = "hook:agentctx:";
// "immediate" skips OpenClaw's 30 s spacing of heartbeats; its flood guard (5 runs a
// minute per agent) still applies, and defers a wake rather than dropping it.
export const WAKE_INTENT = "immediate";
export const MAIN_SESSION_KEY = "agent:main:main"; // when OpenClaw cannot tell us its own
export const DELIVERY_POLL_MS = 500; // how often a queued event is checked for delivery
export const RETRY_MS = 30_000; // a wake that failed is tried again this much later
const MS = 1000;

function why(error) {
  return String(error?.message ?? error);
}

/** "2026-11-26 05:49:08 UTC" */
function utc(micros) {
  return `${microsIso(micros).slice(0, 19).replace("T", " ")} UTC`;
}

/**
 * What the agent is told: a fact (OpenClaw shows system events to the model as data,
 * not instructions), then the drive's prompt, e.g. "agentctx drive CARE triggered at
 * 2026-11-26 05:49:08 UTC (now 21.0/20). Your CARE drive triggered. Check in with your
 * human." *view* is the drive as the state has it (pressure, threshold, prompt).
 */
export function wakeText(drive, micros, view) {
  const level =
    view?.threshold === undefined
      ? ""
      : ` (now ${fixed(toFloat(view.pressure), 1)}/${general(toFloat(view.threshold))})`;
  const head = `agentctx drive ${drive} triggered at ${utc(micros)}${level}.`;
  const prompt = typeof view?.prompt === "string" ? strip(view.prompt) : "";
  return prompt === "" ? head : `${head} ${prompt}`;
}

export class Waker {
  #pending = new Map(); // drive -> {micros, text, contextKey, sessionKey}: queued, not yet taken
  #pollTimer = null;
  #retryTimer = null;
  #started = false;
  #onState = (state) => this.#guard(() => this.#check(state));
  #onEvent = (event) => this.#guard(() => this.#checkEvent(event));

  /**
   * @param {object} parts
   * @param {import("node:events").EventEmitter & {current(): object|null}} parts.feed
   * @param {string} parts.file the memory's file (FIRED_FILE under OpenClaw's state dir)
   * @param {object} parts.system enqueueSystemEvent, requestHeartbeat, and when OpenClaw
   *   has them peekSystemEventEntries(sessionKey) and mainSessionKey()
   * @param {string|null} parts.sessionKey the session to wake; null: the main session
   * @param {boolean} parts.enabled false: fires are recorded as handled, nobody is woken
   * @param {object} parts.logger OpenClaw's plugin logger
   * @param {number} [parts.retryMs]
   */
  constructor({ feed, file, system, sessionKey, enabled, logger, retryMs = RETRY_MS }) {
    this.feed = feed;
    this.memory = new FiredMemory(file);
    this.system = system;
    this.sessionKey = sessionKey;
    this.enabled = enabled;
    this.logger = logger;
    this.retryMs = retryMs;
  }

  /** Load the memory and follow the feed (start it after this: its first state counts). */
  start() {
    if (this.#started) return;
    this.#started = true;
    const problem = this.memory.load();
    if (problem !== null) {
      this.logger.warn(`agentctx: ${problem}; fired triggers in the next state count as handled`);
    }
    this.feed.on("state", this.#onState);
    this.feed.on("event", this.#onEvent);
    const current = this.feed.current();
    if (current !== null) this.#onState(current);
  }

  /** Stop following; a queued event a turn took meanwhile is recorded, the rest are not. */
  stop() {
    this.#started = false;
    this.feed.off("state", this.#onState);
    this.feed.off("event", this.#onEvent);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#guard(() => this.#confirm());
    clearInterval(this.#pollTimer);
    this.#pollTimer = null;
    this.#pending.clear();
  }

  #guard(work) {
    try {
      work();
    } catch (error) {
      this.logger.warn(`agentctx: wake: ${why(error)}`);
    }
  }

  #check(state) {
    if (!this.memory.ready) {
      this.memory.baseline(state); // just installed: earlier fires are not news
      this.#save();
      return;
    }
    for (const { drive, micros } of newFires(state, this.memory)) {
      this.#fired(drive, micros, state.drives[drive]);
    }
  }

  #checkEvent(event) {
    // The state that reflects a fire comes before its event, so this normally finds
    // the fire handled or queued already; it acts when a state did not show it.
    if (event?.kind !== "triggered" || !this.memory.ready) return;
    const drive = String(event.drive);
    const micros = secondsMicros(event.ts);
    if (!laterFire(micros, this.memory.handled(drive))) return;
    const view = { ...this.feed.current()?.drives[drive], pressure: event.pressure };
    this.#fired(drive, micros, view);
  }

  #fired(drive, micros, view) {
    const queued = this.#pending.get(drive);
    if (queued !== undefined && !laterFire(micros, queued.micros)) return; // on its way
    if (!this.enabled) {
      this.memory.record(drive, micros); // seen, so turning wakes on later is no news
      this.#save();
      return;
    }
    if (this.#retryTimer !== null) return; // a wake failed: all are tried again together
    let wake;
    try {
      wake = this.#wake(drive, micros, view);
    } catch (error) {
      const when = `trying again in ${this.retryMs / MS} s`;
      this.logger.warn(`agentctx: could not wake the agent for ${drive} (${why(error)}); ${when}`);
      this.#retryLater();
      return;
    }
    this.#pending.set(drive, wake);
    const fired = microsIso(micros);
    this.logger.info(`agentctx: ${drive} triggered (fired ${fired}): woke ${wake.sessionKey}`);
    if (this.system.peekSystemEventEntries === undefined) {
      this.#confirm(); // OpenClaw cannot show us its queue: queued is as far as we can see
    } else {
      this.#pollTimer ??= setInterval(() => this.#guard(() => this.#confirm()), DELIVERY_POLL_MS);
      this.#pollTimer.unref();
    }
  }

  #wake(drive, micros, view) {
    const sessionKey = this.sessionKey ?? this.system.mainSessionKey?.() ?? MAIN_SESSION_KEY;
    const text = wakeText(drive, micros, view);
    const wake = { micros, text, contextKey: `${CONTEXT_PREFIX}${drive}`, sessionKey };
    const options = { sessionKey, contextKey: wake.contextKey, replace: true };
    // false also when the same text is already queued (a restarted service): not a failure
    if (!this.system.enqueueSystemEvent(wake.text, options) && !this.#waiting(wake)) {
      throw new Error(`OpenClaw did not queue the event for ${sessionKey}`);
    }
    try {
      const reason = `${WAKE_REASON_PREFIX}${drive}`;
      this.system.requestHeartbeat({ source: WAKE_SOURCE, intent: WAKE_INTENT, reason, sessionKey });
    } catch (error) {
      // the event is queued: the session's next turn, whenever it comes, still gets it
      const what = `no immediate turn for ${drive} (${why(error)})`;
      this.logger.warn(`agentctx: ${what}; the session's next turn has it`);
    }
    return wake;
  }

  /** Whether OpenClaw still holds *wake*'s event (no turn took it yet). */
  #waiting(wake) {
    const entries = this.system.peekSystemEventEntries?.(wake.sessionKey) ?? [];
    const contextKey = wake.contextKey.toLowerCase(); // OpenClaw keeps context keys lowercased
    const text = wake.text.trim(); // and their texts trimmed
    return entries.some((entry) => entry?.contextKey === contextKey && entry?.text === text);
  }

  /** Record every queued wake a turn has taken; stop polling when none is left. */
  #confirm() {
    let taken = 0;
    for (const [drive, wake] of this.#pending) {
      let waiting = false;
      try {
        waiting = this.#waiting(wake);
      } catch (error) {
        const what = `cannot see OpenClaw's queue (${why(error)})`;
        this.logger.warn(`agentctx: ${what}; ${drive}'s wake counts as delivered`);
      }
      if (waiting) continue;
      this.#pending.delete(drive);
      this.memory.record(drive, wake.micros);
      taken += 1;
    }
    if (taken > 0) this.#save();
    if (this.#pending.size === 0) {
      clearInterval(this.#pollTimer);
      this.#pollTimer = null;
    }
  }

  #save() {
    try {
      this.memory.save();
    } catch (error) {
      const what = `could not save ${this.memory.file} (${why(error)})`;
      this.logger.warn(`agentctx: ${what}; after a restart the same fire may wake the agent again`);
    }
  }

  #retryLater() {
    if (this.#retryTimer !== null) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      const state = this.feed.current();
      if (state !== null) this.#onState(state);
    }, this.retryMs).unref();
  }
}
