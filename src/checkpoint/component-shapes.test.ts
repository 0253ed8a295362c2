/**
 * The tensors a config describes (component-shapes.ts) are exactly those Easel's graph builders read for it, for the
 * bundled full-size configs, and exactly those the tiny fixture folders hold.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { tensorsOf } from "../../test/helpers/single-file.ts";
import { createRecordingWeights } from "../graph/weights.ts";
import { buildClipTextGraph, clipTextConfigFromJson } from "../models/components/clip-text.graph.ts";
import { buildUnetGraph } from "../models/components/unet.graph.ts";
import { unetConfigFromJson } from "../models/components/unet-config.ts";
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from "../models/components/vae.graph.ts";
import { vaeConfigFromJson } from "../models/components/vae-config.ts";
import { expectedTensors } from "./component-shapes.ts";
import { STANDARD_CONFIGS } from "./standard-configs.ts";

type Json = Record<string, unknown>;

/** name -> shape of every weight the builder of `className` reads for `config`. */
function builderReads(className: string, config: Json): Map<string, number[]> {
  const rec = createRecordingWeights();
  if (className === "UNet2DConditionModel") buildUnetGraph(unetConfigFromJson(config), rec.source);
  else if (className === "AutoencoderKL") {
    const c = vaeConfigFromJson(config);
    buildVaeEncoderGraph(c, rec.source);
    buildVaeDecoderGraph(c, rec.source);
  } else if (className.startsWith("CLIPTextModel")) buildClipTextGraph(clipTextConfigFromJson(config), rec.source);
  else throw new Error(className);
  return new Map(rec.recorded().map((r) => [r.name, r.shape]));
}

/** The expected tensors, the optional ones only where `present` has them. */
function expected(className: string, config: Json, present: Map<string, unknown>): Map<string, number[]> {
  const e = expectedTensors(className, config);
  assert.ok(e, className);
  const optional = new Set(e.optional.flat());
  return new Map([...e.shapes].filter(([k]) => !optional.has(k) || present.has(k)));
}

const sorted = (m: Map<string, number[]>) => [...m].sort((a, b) => (a[0] < b[0] ? -1 : 1));

describe("component shapes from configs", () => {
  for (const [family, s] of Object.entries(STANDARD_CONFIGS)) {
    test(`${family} bundled configs: the weights Easel's builders read`, () => {
      for (const [name, config] of Object.entries(s.components)) {
        const cls = (s.modelIndex[name] as string[])[1];
        const reads = builderReads(cls, config);
        assert.deepEqual(sorted(expected(cls, config, reads)), sorted(reads), `${family} ${name}`);
      }
    });
  }

  for (const family of ["sd15", "sdxl", "playground"]) {
    test(`${family} fixture folder: exactly the tensors its configs describe`, () => {
      const dir = join("test/fixtures/models", family);
      const index = JSON.parse(readFileSync(join(dir, "model_index.json"), "utf8")) as Record<string, unknown>;
      for (const [name, spec] of Object.entries(index)) {
        if (!Array.isArray(spec) || spec[0] === null || /(Scheduler|Tokenizer)$/.test(spec[1])) continue;
        const config = JSON.parse(readFileSync(join(dir, name, "config.json"), "utf8"));
        const held = new Map([...tensorsOf(join(dir, name))].map(([k, t]) => [k, t.shape]));
        assert.deepEqual(sorted(expected(spec[1], config, held)), sorted(held), `${family} ${name}`);
      }
    });
  }
});
