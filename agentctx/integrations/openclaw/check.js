// The dry run behind `agentctx hooks status openclaw`: read the drive state the way
// a prompt without the live service does, render the block, and print one JSON line:
// {"ok": true, "source": "socket"|"file", "seq": N, "chars": N} or {"ok": false, "why": "..."}.
//
//     node check.js ['{"socketPath": ..., "mode": ...}']   (the plugin's config, as JSON)

import { readOnce } from "./oneshot.js";
import { resolveOptions } from "./options.js";
import { charCount } from "./pyformat.js";
import { markdown } from "./render.js";

const CLIENT = "agentctx-hooks-status";

async function check(config) {
  const options = resolveOptions(config, process.env);
  const state = await readOnce(options, CLIENT);
  if (state === null) {
    const { socketPath, snapshotPath } = options;
    return { ok: false, why: `no sidecar answering at ${socketPath} and no snapshot at ${snapshotPath}` };
  }
  const block = markdown(state, options.maxChars);
  if (block === "") return { ok: false, why: `maxChars ${options.maxChars} leaves no room for a block` };
  return { ok: true, source: state.source, seq: state.seq, chars: charCount(block) };
}

let result;
try {
  result = await check(JSON.parse(process.argv[2] ?? "{}"));
} catch (error) {
  result = { ok: false, why: String(error?.message ?? error) };
}
process.stdout.write(`${JSON.stringify(result)}\n`);
