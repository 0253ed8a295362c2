/**
 * SD3 / SD3.5 single files: a file made from a tiny SD3 folder by the inverse of diffusers' conversion
 * (test/helpers/single-file.ts, written from Stability's published MMDiT layout) converts back to exactly the folder's
 * tensors and generates exactly the folder's image, for SD3 medium's shape (the fixture), SD3.5 large's (qk RMS norm)
 * and SD3.5 medium's (dual attention); T5 shipped apart comes from the config folder; without any SD3 folder the
 * error names what is missing.
 *
 * SD3 files carry CLIP-L without a text projection and diffusers gives it the identity; the folders here get an
 * identity projection too (as SD3's reference pipeline pools CLIP-L unprojected), so the round trip is exact.
 */
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { makeSingleFile, tensorsOf } from "../../test/helpers/single-file.ts";
import { EaselError } from "../core/errors.ts";
import { Engine } from "../engine/engine.ts";
import { readSafetensorsHeader, readTensorBytes, writeSafetensors } from "../graph/safetensors.ts";
import { sd3TransformerConfigFromJson } from "../models/sd3/config.ts";
import { buildMmditGraph } from "../models/sd3/mmdit.graph.ts";
import { writeTinyCheckpoint } from "../models/testing/tiny-checkpoint.ts";
import { convertSingleFile, detectSingleFile } from "./single-file.ts";

const FIXTURE = "test/fixtures/models/sd3";
const COMPONENTS = ["transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"];
const PARAMS = { prompt: "a red cube", negativePrompt: "blur", n: 1, width: 64, height: 64, steps: 2, scheduler: "flow_euler", seed: 4 };

/** The folder's CLIP-L text projection set to the identity (F32, as the tiny checkpoints store it). */
function identityClipLProjection(folder: string): void {
  const file = join(folder, "text_encoder", "model.safetensors");
  const tensors = [...tensorsOf(join(folder, "text_encoder")).values()];
  const p = tensors.find((t) => t.name === "text_projection.weight")!;
  const [n] = p.shape;
  const eye = new Float32Array(n * n);
  for (let i = 0; i < n; i++) eye[i * n + i] = 1;
  p.data = new Uint8Array(eye.buffer);
  writeSafetensors(file, tensors);
}

function assertSameTensors(folder: string, out: string, components: string[]): void {
  for (const c of components) {
    const want = tensorsOf(join(folder, c));
    const got = tensorsOf(join(out, c));
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), c);
    for (const [k, t] of want) {
      const g = got.get(k)!;
      assert.deepEqual([g.dtype, g.shape], [t.dtype, t.shape], `${c} ${k}`);
      assert.ok(Buffer.from(g.data).equals(Buffer.from(t.data)), `${c} ${k} bytes`);
    }
  }
}

/** A tiny SD3.5-shaped folder: qk RMS norm, and dual attention in `dual` blocks (SD3.5 medium) when given. */
function writeTinySd35(dir: string, seed: number, dual: number[] = []): void {
  writeTinyCheckpoint(dir, { family: "sd3_5", seed, transformer: (json, w) => buildMmditGraph(sd3TransformerConfigFromJson({ ...json, dual_attention_layers: dual }), w) });
  const cfgFile = join(dir, "transformer", "config.json");
  writeFileSync(cfgFile, `${JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, "utf8")), dual_attention_layers: dual }, null, 2)}\n`);
}

describe("SD3 / SD3.5 single files convert back to their diffusers folder", () => {
  let tmp: string;
  let engine: Engine;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "easel-single-sd3-"));
    engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(tmp, "cache") });
  });
  after(async () => {
    await engine.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test("SD3 medium shape (the sd3 fixture, T5 included): same tensors, same image", async () => {
    const folder = join(tmp, "sd3-folder");
    cpSync(FIXTURE, folder, { recursive: true });
    identityClipLProjection(folder);
    const single = join(tmp, "sd3.safetensors");
    makeSingleFile(folder, "sd3", single);
    const entries = readSafetensorsHeader(single).entries;
    assert.equal(detectSingleFile(single, entries), "sd3");
    // The original layout: fused qkv, text_encoders.* prefixes, no CLIP-L projection.
    assert.ok(entries.some((e) => e.name === "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"));
    assert.ok(entries.some((e) => e.name === "text_encoders.t5xxl.transformer.shared.weight"));
    assert.ok(!entries.some((e) => e.name.startsWith("text_encoders.clip_l.transformer.text_projection")));

    const out = join(tmp, "sd3-converted");
    const r = convertSingleFile(single, { configDir: folder, out });
    assert.equal(r.family, "sd3");
    assert.deepEqual(r.fromConfig, []);
    assertSameTensors(folder, out, COMPONENTS);
    const a = await engine.run(folder, PARAMS);
    const b = await engine.run(out, PARAMS);
    assert.ok(Buffer.from(a.images[0].rgb).equals(Buffer.from(b.images[0].rgb)), "same image");
  });

  test("SD3.5 large shape (qk norm) and SD3.5 medium shape (dual attention): the models directory's matching folder lends its configs; same tensors, same image", async () => {
    const models = join(tmp, "models");
    cpSync(FIXTURE, join(models, "a-sd3-medium"), { recursive: true });
    writeTinySd35(join(models, "b-sd35-large"), 35);
    writeTinySd35(join(models, "c-sd35-medium"), 36, [0]);
    for (const [name, release] of [
      ["b-sd35-large", "SD3.5 large"],
      ["c-sd35-medium", "SD3.5 medium"],
    ]) {
      const folder = join(models, name);
      identityClipLProjection(folder);
      const single = join(tmp, `${name}.safetensors`);
      makeSingleFile(folder, "sd3", single);
      const entries = readSafetensorsHeader(single).entries;
      assert.ok(entries.some((e) => e.name === "model.diffusion_model.joint_blocks.0.x_block.attn.ln_q.weight"), name);
      assert.equal(
        entries.some((e) => e.name === "model.diffusion_model.joint_blocks.0.x_block.attn2.qkv.weight"),
        release === "SD3.5 medium",
      );
      // The SD3 medium folder (no qk norm) and the other SD3.5 shape do not fit; the matching one is found.
      const out = join(tmp, `${name}-converted`);
      const r = convertSingleFile(single, { searchDir: models, out });
      assert.equal(r.configDir, folder);
      assertSameTensors(folder, out, COMPONENTS);
      const a = await engine.run(folder, PARAMS);
      const b = await engine.run(out, PARAMS);
      assert.ok(Buffer.from(a.images[0].rgb).equals(Buffer.from(b.images[0].rgb)), `${name}: same image`);
    }
  });

  test("components the file lacks (T5; all but the transformer) come from the config folder when it has weights, else the error names them", () => {
    const folder = join(tmp, "sd3-no-t5-folder");
    cpSync(FIXTURE, folder, { recursive: true });
    identityClipLProjection(folder);
    const single = join(tmp, "sd3-no-t5.safetensors");
    makeSingleFile(folder, "sd3", single, { leave: ["text_encoder_3"] });
    assert.ok(!readSafetensorsHeader(single).entries.some((e) => e.name.startsWith("text_encoders.t5xxl.")));
    const r = convertSingleFile(single, { configDir: folder, out: join(tmp, "no-t5-out") });
    assert.deepEqual(r.fromConfig, ["text_encoder_3"]);
    assertSameTensors(folder, r.out, COMPONENTS);

    // A transformer-only file, its MMDiT keys at the top level (as some tools save the diffusion model alone).
    const transformerOnly = join(tmp, "sd3-transformer-only.safetensors");
    const header = readSafetensorsHeader(single).entries.filter((e) => e.name.startsWith("model.diffusion_model."));
    writeSafetensors(transformerOnly, header.map((e) => ({ name: e.name.slice("model.diffusion_model.".length), dtype: e.dtype, shape: e.shape, data: readTensorBytes(e) })));
    assert.equal(detectSingleFile(transformerOnly, readSafetensorsHeader(transformerOnly).entries), "sd3");
    const t = convertSingleFile(transformerOnly, { configDir: folder, out: join(tmp, "transformer-only-out") });
    assert.deepEqual(t.fromConfig, ["vae", "text_encoder", "text_encoder_2", "text_encoder_3"]);
    assertSameTensors(folder, t.out, COMPONENTS);

    rmSync(join(folder, "text_encoder_3", "model.safetensors"));
    assert.throws(
      () => convertSingleFile(single, { configDir: folder, out: join(tmp, "no-t5-out-2") }),
      (e: unknown) => e instanceof EaselError && e.code === "E_CHECKPOINT_INVALID" && /has no weights for text_encoder_3, and .* has none either/.test(e.message),
    );
    assert.equal(existsSync(join(tmp, "no-t5-out-2")), false);
  });

  test("with no SD3 folder, the error says configs and tokenizers are missing and which release to fetch; a folder of other widths is refused naming the tensor", () => {
    const folder = join(tmp, "sd35-alone");
    writeTinySd35(folder, 37, [0]);
    const single = join(tmp, "lonely-sd35.safetensors");
    makeSingleFile(folder, "sd3", single);
    const empty = join(tmp, "empty-models");
    for (const opts of [{}, { searchDir: empty }]) {
      assert.throws(
        () => convertSingleFile(single, { ...opts, out: join(tmp, "lonely-out") }),
        (e: unknown) =>
          e instanceof EaselError &&
          e.code === "E_INPUT_INVALID" &&
          e.param === "config" &&
          e.message.startsWith("lonely-sd35.safetensors is an SD3.5 medium single file, and Easel bundles no SD3 configs") &&
          /give --config DIR, a diffusers folder of that release with its model_index\.json, transformer, vae and text_encoder \/ text_encoder_2 \/ text_encoder_3 configs, scheduler and tokenizer \/ tokenizer_2 \/ tokenizer_3 files/.test(e.message) &&
          /easel pull stabilityai\/stable-diffusion-3\.5-medium/.test(e.message),
        JSON.stringify(opts),
      );
    }
    // The SD3 medium fixture has other widths and no qk norms: the first tensor that does not fit is named.
    assert.throws(
      () => convertSingleFile(single, { configDir: FIXTURE, out: join(tmp, "lonely-out") }),
      (e: unknown) =>
        e instanceof EaselError &&
        e.code === "E_INPUT_INVALID" &&
        e.message.startsWith(`lonely-sd35.safetensors does not fit ${resolve(FIXTURE)}: tensor model.diffusion_model.`) &&
        /pass --config DIR/.test(e.message),
    );
  });
});
