// The plugin's manifest, package and option defaults agree with each other.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as options from "../../agentctx/integrations/openclaw/options.js";

const PLUGIN = new URL("../../agentctx/integrations/openclaw/", import.meta.url);
const manifest = JSON.parse(readFileSync(new URL("openclaw.plugin.json", PLUGIN), "utf8"));
const pkg = JSON.parse(readFileSync(new URL("package.json", PLUGIN), "utf8"));

test("the package is the plugin OpenClaw loads", () => {
  assert.equal(pkg.name, manifest.id);
  assert.equal(pkg.type, "module");
  assert.deepEqual(pkg.openclaw.extensions, ["./index.js"]);
  assert.equal(pkg.dependencies, undefined, "no npm dependencies");
});

test("every option in the schema is resolved, with the schema's defaults", () => {
  const schema = manifest.configSchema;
  const resolved = options.resolveOptions({}, { AGENTCTX_RUNTIME_DIR: "/r" });
  assert.deepEqual(Object.keys(schema.properties).sort(), Object.keys(resolved).sort());
  assert.equal(schema.additionalProperties, false);
  assert.equal(schema.properties.mode.default, options.DEFAULT_MODE);
  assert.deepEqual(schema.properties.mode.enum, options.MODES);
  assert.equal(schema.properties.maxChars.default, options.DEFAULT_MAX_CHARS);
  assert.equal(schema.properties.timeoutMs.default, options.DEFAULT_TIMEOUT_MS);
  assert.equal(schema.properties.timeoutMs.maximum, options.MAX_TIMEOUT_MS);
  assert.equal(schema.properties.wake.default, options.DEFAULT_WAKE);
  assert.equal(schema.properties.sessionKey.default, undefined, "the main session, asked of OpenClaw");
  assert.deepEqual(resolved, {
    socketPath: "/r/sidecar.sock",
    snapshotPath: "/r/drives-state.json",
    mode: "always",
    maxChars: 2000,
    timeoutMs: 250,
    wake: true,
    sessionKey: null,
  });
});

test("given options win; bad ones fall back to the defaults instead of failing a prompt", () => {
  const env = { AGENTCTX_RUNTIME_DIR: "/r" };
  const given = {
    socketPath: "/s",
    snapshotPath: "/f",
    mode: "always",
    maxChars: 0,
    timeoutMs: 9,
    wake: false,
    sessionKey: "agent:ops:main",
  };
  assert.deepEqual(options.resolveOptions(given, env), given);
  const bad = { socketPath: "", mode: "sometimes", maxChars: -1, timeoutMs: 1e9, wake: "no", sessionKey: "" };
  assert.deepEqual(options.resolveOptions(bad, env), options.resolveOptions(null, env));
});

test("a named agent's sidecar is in NAME/ of the runtime dir ($AGENTCTX_AGENT)", () => {
  const named = options.resolveOptions({}, { AGENTCTX_RUNTIME_DIR: "/r", AGENTCTX_AGENT: "ada" });
  assert.equal(named.socketPath, "/r/ada/sidecar.sock");
  assert.equal(named.snapshotPath, "/r/ada/drives-state.json");
  const bad = options.resolveOptions({}, { AGENTCTX_RUNTIME_DIR: "/r", AGENTCTX_AGENT: "../x" });
  assert.equal(bad.socketPath, "/r/.invalid-agent-name/sidecar.sock");
});
