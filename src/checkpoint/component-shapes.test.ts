/**
 * The tensors a config describes (component-shapes.ts) are exactly those Easel's graph builders read for it, for the
 * bundled full-size configs and the tiny checkpoints' configs (SD3.5's qk norm and dual attention included), and
 * exactly those the tiny fixture folders hold.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { tensorsOf } from "../../test/helpers/single-file.ts";
import { createRecordingWeights } from "../graph/weights.ts";
import { buildClipTextGraph, clipTextConfigFromJson } from "../models/components/clip-text.graph.ts";
import { buildT5EncoderGraph, t5EncoderConfigFromJson } from "../models/components/t5-encoder.graph.ts";
import { buildUnetGraph } from "../models/components/unet.graph.ts";
import { unetConfigFromJson } from "../models/components/unet-config.ts";
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from "../models/components/vae.graph.ts";
import { vaeConfigFromJson } from "../models/components/vae-config.ts";
import { sd3TransformerConfigFromJson } from "../models/sd3/config.ts";
import { buildMmditGraph } from "../models/sd3/mmdit.graph.ts";
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
  else if (className === "T5EncoderModel") buildT5EncoderGraph(t5EncoderConfigFromJson(config), rec.source);
  else if (className === "SD3Transformer2DModel") buildMmditGraph(sd3TransformerConfigFromJson(config), rec.source);
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

  test("SD3 transformer configs (medium; qk RMS norm; dual attention) and T5: the weights Easel's builders read", () => {
    const fixture = "test/fixtures/models/sd3";
    const transformer = JSON.parse(readFileSync(join(fixture, "transformer", "config.json"), "utf8"));
    for (const config of [transformer, { ...transformer, qk_norm: "rms_norm" }, { ...transformer, qk_norm: "rms_norm", dual_attention_layers: [0] }, { ...transformer, num_layers: 3, dual_attention_layers: [0, 1] }]) {
      const reads = builderReads("SD3Transformer2DModel", config);
      assert.deepEqual(sorted(expected("SD3Transformer2DModel", config, reads)), sorted(reads), JSON.stringify(config));
    }
    const t5 = JSON.parse(readFileSync(join(fixture, "text_encoder_3", "config.json"), "utf8"));
    const reads = builderReads("T5EncoderModel", t5);
    assert.deepEqual(sorted(expected("T5EncoderModel", t5, reads)), sorted(reads));
  });

  for (const family of ["sd15", "sdxl", "playground", "sd3"]) {
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
