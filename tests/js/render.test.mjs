// The OpenClaw plugin's renderer against the golden blocks the Python renderer made
// (tests/goldens.py): every one, character for character.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { DEFAULT_MAX_CHARS, markdown } from "../../agentctx/integrations/openclaw/render.js";
import { DriveState } from "../../agentctx/integrations/openclaw/state.js";

const GOLDEN_DIR = new URL("../golden/render/", import.meta.url).pathname;
const CASES = readdirSync(GOLDEN_DIR).filter((name) => name.endsWith(".json")).sort();

test("there are golden cases", () => {
  assert.ok(CASES.length > 0, `no *.json in ${GOLDEN_DIR}`);
});

for (const name of CASES) {
  const spec = JSON.parse(readFileSync(join(GOLDEN_DIR, name), "utf8"));
  for (const budget of spec.max_chars ?? [DEFAULT_MAX_CHARS]) {
    const golden = join(GOLDEN_DIR, name.replace(/\.json$/, `.${budget}.md`));
    test(`${name} at ${budget} characters`, () => {
      const state = new DriveState(spec.state, spec.source, spec.received_at);
      assert.equal(markdown(state, budget), readFileSync(golden, "utf8"));
    });
  }
}
