import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { createRecordingWeights } from "../../graph/weights.ts";
import { buildUnetGraph } from "./unet.graph.ts";
import { unetConfigFromJson } from "./unet-config.ts";

const json = JSON.parse(readFileSync("test/fixtures/models/sd15/unet/config.json", "utf8")) as Record<string, unknown>;

function midKeys(cfgJson: Record<string, unknown>): string[] {
  const rec = createRecordingWeights();
  buildUnetGraph(unetConfigFromJson(cfgJson), rec.source);
  return rec.recorded().map((w) => w.name).filter((n) => n.startsWith("mid_block."));
}

test("mid_block_type: missing means the default cross-attention mid block, explicit null means none", () => {
  const { mid_block_type: _, ...withoutKey } = json;
  assert.ok(midKeys(withoutKey).length > 0);
  assert.deepEqual(midKeys({ ...json, mid_block_type: null }), []);
  assert.throws(() => unetConfigFromJson({ ...json, mid_block_type: "UNetMidBlock2DSimpleCrossAttn" }), /mid_block_type/);
});
