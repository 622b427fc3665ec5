// A drive state as the plugin holds it: the daemon's `state` message, where it came
// from, and when it was received. The JavaScript twin of agentctx/state.py
// (DriveState): the same age, staleness and "newer than" rules, so the block and the
// never-go-back rule are the Python client's.

import { toFloat } from "./pyformat.js";

export const STALE_TICKS = 3; // older than this many tick intervals counts as stale...
export const STALE_MIN_S = 5.0; // ...but never less than this (scheduling jitter on 1 s ticks)
// A tick stamped further than this in the reader's future means a clock was stepped:
// its age is unknowable, so it is not called fresh.
export const FUTURE_TOLERANCE_S = 2.0;

/** Python's max(a, b) for floats: a unless b is strictly greater. */
function pyMax(a, b) {
  return b > a ? b : a;
}

export class DriveState {
  /**
   * @param {object} data the state message (or snapshot file) as parsed JSON
   * @param {"socket"|"file"} source where it came from
   * @param {number} receivedAt Unix time (seconds) it was received
   */
  constructor(data, source, receivedAt = Date.now() / 1000) {
    this.data = data;
    this.source = source;
    this.receivedAt = receivedAt;
  }

  get seq() {
    return Math.trunc(toFloat(this.data.seq));
  }

  get bootId() {
    return String(this.data.boot_id ?? "");
  }

  get tickTs() {
    return toFloat(this.data.tick_ts);
  }

  get tickInterval() {
    return toFloat(this.data.tick_interval ?? 1.0);
  }

  /** Drive name -> its fields (pressure, threshold, ratio, band, status, ...). */
  get drives() {
    const drives = this.data.drives;
    return drives !== null && typeof drives === "object" ? drives : {};
  }

  /** Seconds between the daemon's tick and the moment this state was received. */
  get ageS() {
    return pyMax(0.0, this.receivedAt - this.tickTs);
  }

  /** How far the tick's time is in the reader's future (0 normally). */
  get clockAheadS() {
    return pyMax(0.0, this.tickTs - this.receivedAt);
  }

  /** Probably not current: older than a few ticks, or stamped in the future. */
  get stale() {
    if (this.clockAheadS > FUTURE_TOLERANCE_S) return true;
    return this.ageS > pyMax(STALE_TICKS * this.tickInterval, STALE_MIN_S);
  }

  /** The same state, seen from *source* at *receivedAt*. */
  as(source, receivedAt) {
    return new DriveState(this.data, source, receivedAt);
  }

  /**
   * Whether this state should replace *other* for a reader that must never go back.
   * `seq` continues across daemon restarts, so it decides; only a daemon that lost its
   * state (new boot_id, lower seq) is followed, and only if its tick is more recent.
   */
  newerThan(other) {
    if (other === null || other === undefined) return true;
    if (this.seq > other.seq) return true;
    return this.bootId !== other.bootId && this.seq < other.seq && this.tickTs > other.tickTs;
  }
}
