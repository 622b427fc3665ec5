// Wire protocol v1 (docs/protocol.md) over node:net: frames are a 4-byte big-endian
// length, then that many bytes of UTF-8 JSON, one object each.

import fs from "node:fs";
import net from "node:net";

export const PROTO = 1;
export const HEADER_BYTES = 4;
// The daemon sends full states of a few KiB; a length past this is a broken stream,
// refused before any of it is buffered.
export const MAX_FRAME_BYTES = 16 << 20;
export const GET_ID = 1;

export function encodeFrame(message) {
  const body = Buffer.from(JSON.stringify(message), "utf8");
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32BE(body.length);
  return Buffer.concat([header, body]);
}

export function helloFrame(client, subscribe) {
  return encodeFrame({ type: "hello", proto: PROTO, client, subscribe });
}

/** Bytes in, whole messages out. `feed` throws an Error when the stream is broken. */
export class FrameDecoder {
  #pending = Buffer.alloc(0);

  feed(chunk) {
    this.#pending = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    const messages = [];
    while (this.#pending.length >= HEADER_BYTES) {
      const size = this.#pending.readUInt32BE(0);
      if (size === 0 || size > MAX_FRAME_BYTES) throw new Error(`bad frame length ${size}`);
      if (this.#pending.length < HEADER_BYTES + size) break;
      const body = this.#pending.subarray(HEADER_BYTES, HEADER_BYTES + size);
      this.#pending = this.#pending.subarray(HEADER_BYTES + size);
      let message;
      try {
        message = JSON.parse(body.toString("utf8"));
      } catch (error) {
        throw new Error(`a frame is not JSON (${error.message})`);
      }
      if (message === null || typeof message !== "object" || typeof message.type !== "string") {
        throw new Error("a frame is not a message (no type)");
      }
      messages.push(message);
    }
    return messages;
  }
}

/**
 * Throws unless *path* is a socket owned by us. The Python client checks the
 * server's uid with SO_PEERCRED, which node:net cannot read; the socket's owner is
 * the uid that bound it, in a directory that only its owner can write to.
 */
export function checkSocket(path) {
  let stat;
  try {
    stat = fs.lstatSync(path);
  } catch (error) {
    throw new Error(`${path}: ${error.code === "ENOENT" ? "no socket" : error.code ?? error.message}`);
  }
  if (!stat.isSocket()) throw new Error(`${path}: not a socket`);
  if (stat.uid !== process.getuid()) {
    throw new Error(`${path}: owned by uid ${stat.uid}, not by us; not trusted`);
  }
}

/**
 * The state, asked once (`hello` without subscribing, then `get`, in one write).
 * Resolves with the state message; rejects with a one-line Error when no sidecar
 * answers within *timeoutMs* (socket activation: connecting succeeds while the
 * daemon is down, so "down" is silence, not a refused connect).
 */
export function requestState(socketPath, timeoutMs, client) {
  return new Promise((resolve, reject) => {
    checkSocket(socketPath);
    const decoder = new FrameDecoder();
    const socket = net.createConnection(socketPath);
    let settled = false;
    const finish = (error, message) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(message);
    };
    const silent = () => finish(new Error(`${socketPath}: no answer within ${timeoutMs} ms`));
    const timer = setTimeout(silent, timeoutMs);
    socket.on("connect", () => {
      socket.write(Buffer.concat([helloFrame(client, false), encodeFrame({ type: "get", id: GET_ID })]));
    });
    socket.on("data", (chunk) => {
      try {
        for (const message of decoder.feed(chunk)) {
          if (message.type === "state" && message.id === GET_ID) finish(null, message);
          if (message.type === "error") finish(new Error(`${socketPath}: ${message.message}`));
        }
      } catch (error) {
        finish(new Error(`${socketPath}: ${error.message}`));
      }
    });
    socket.on("error", (error) => finish(new Error(`${socketPath}: ${error.code ?? error.message}`)));
    socket.on("close", () => finish(new Error(`${socketPath}: closed before answering`)));
  });
}
