/**
 * Single-file parity: a single file made from a tiny diffusers checkpoint by the inverse of diffusers' conversion
 * (test/helpers/single-file.ts, written from the published original layouts) converts back to exactly the folder's
 * tensors, and the converted folder generates exactly the folder's image, for SD1.5 and SDXL; where configs come from
 * (--config, the models directory, the bundled standard ones) and the refusal of a file that fits none of them.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { EaselError } from "../core/errors.ts";
import { Engine } from "../engine/engine.ts";
import { makeSingleFile, tensorsOf } from "../../test/helpers/single-file.ts";
import { readSafetensorsHeader, readTensorBytes, writeSafetensors } from "../graph/safetensors.ts";
import { writeTinyCheckpoint } from "../models/testing/tiny-checkpoint.ts";
import { convertSingleFile, detectSingleFile } from "./single-file.ts";

describe("single-file checkpoints convert back to their diffusers folder", () => {
  let tmp: string;
  let engine: Engine;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "easel-single-"));
    engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(tmp, "cache") });
  });
  after(async () => {
    await engine.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  for (const family of ["sd15", "sdxl"] as const) {
    test(`${family}: same tensors, same image`, async () => {
      const folder = join(tmp, `${family}-folder`);
      writeTinyCheckpoint(folder, { family, seed: 17 });
      const single = join(tmp, `${family}.safetensors`);
      makeSingleFile(folder, family, single);
      assert.equal(detectSingleFile(single, readSafetensorsHeader(single).entries), family);

      const out = join(tmp, `${family}-converted`);
      const r = convertSingleFile(single, { configDir: folder, out });
      assert.equal(r.family, family);
      assert.deepEqual(r.fromConfig, []);
      const components = family === "sd15" ? ["unet", "vae", "text_encoder"] : ["unet", "vae", "text_encoder", "text_encoder_2"];
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
      const params = { prompt: "a red cube", negativePrompt: "blur", n: 1, width: 64, height: 64, steps: 3, scheduler: "euler", seed: 4 };
      const a = await engine.run(folder, params);
      const b = await engine.run(out, params);
      assert.ok(Buffer.from(a.images[0].rgb).equals(Buffer.from(b.images[0].rgb)), "same image");
    });
  }

  test("sd2 layout (OpenCLIP text encoder with one layer past the config's, and a projection CLIPTextModel has not): same tensors, same image", async () => {
    const folder = join(tmp, "sd2-folder");
    writeTinyCheckpoint(folder, { family: "sd15", seed: 19 });
    const single = join(tmp, "sd2.safetensors");
    makeSingleFile(folder, "sd2", single);
    assert.equal(detectSingleFile(single, readSafetensorsHeader(single).entries), "sd2");
    const out = join(tmp, "sd2-converted");
    convertSingleFile(single, { configDir: folder, out });
    for (const c of ["unet", "vae", "text_encoder"]) {
      const want = tensorsOf(join(folder, c));
      const got = tensorsOf(join(out, c));
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), c);
      for (const [k, t] of want) assert.ok(Buffer.from(got.get(k)!.data).equals(Buffer.from(t.data)), `${c} ${k}`);
    }
    const params = { prompt: "a red cube", n: 1, width: 64, height: 64, steps: 2, scheduler: "euler", seed: 4 };
    const a = await engine.run(folder, params);
    const b = await engine.run(out, params);
    assert.ok(Buffer.from(a.images[0].rgb).equals(Buffer.from(b.images[0].rgb)), "same image");
  });

  test("without --config, the first model of the same family and shape in the models directory lends its configs", () => {
    const models = join(tmp, "models");
    writeTinyCheckpoint(join(models, "a-xl"), { family: "sdxl", seed: 1 });
    writeTinyCheckpoint(join(models, "b-sd15"), { family: "sd15", seed: 1 });
    const single = join(tmp, "search.safetensors");
    makeSingleFile(join(models, "b-sd15"), "sd15", single);
    const r = convertSingleFile(single, { searchDir: models, out: join(tmp, "search-out") });
    assert.equal(r.configDir, join(models, "b-sd15"));
    // A folder of the family with other widths (the built-in model is an SD1.5 pipeline of its own size) is refused.
    const easelShapes = resolve("models/easel-shapes");
    assert.throws(
      () => convertSingleFile(single, { configDir: easelShapes, out: join(tmp, "shape-out") }),
      (e: unknown) =>
        e instanceof EaselError &&
        e.code === "E_INPUT_INVALID" &&
        e.message.startsWith(`search.safetensors does not fit ${easelShapes}: tensor model.diffusion_model.`) &&
        /pass --config DIR/.test(e.message),
    );
  });

  test("with no --config and no folder of its family, the bundled standard configs are used, and a file of other widths is refused naming the tensor", () => {
    const folder = join(tmp, "sd15-bundled");
    writeTinyCheckpoint(folder, { family: "sd15", seed: 5 });
    const single = join(tmp, "tiny-sd15.safetensors");
    makeSingleFile(folder, "sd15", single);
    const models = join(tmp, "models-xl-only");
    writeTinyCheckpoint(join(models, "xl"), { family: "sdxl", seed: 5 });
    for (const opts of [{}, { searchDir: join(tmp, "nothing-here") }, { searchDir: models }]) {
      const out = join(tmp, "bundled-out");
      assert.throws(
        () => convertSingleFile(single, { ...opts, out }),
        (e: unknown) =>
          e instanceof EaselError &&
          e.code === "E_INPUT_INVALID" &&
          e.param === "config" &&
          // The header's first UNet key (names are sorted) is conv_in's bias: 8 wide in the tiny model, 320 in SD1.5.
          e.message ===
            "tiny-sd15.safetensors does not fit Easel's bundled SD1.5 configs (runwayml/stable-diffusion-v1-5): tensor model.diffusion_model.input_blocks.0.0.bias (unet conv_in.bias) is [8] where unet/config.json makes it [320]; pass --config DIR, a diffusers folder with this model's own configs (model_index.json, component configs, scheduler and tokenizers)",
        JSON.stringify(opts),
      );
      assert.equal(existsSync(out), false);
      assert.deepEqual(
        readdirSync(tmp).filter((n) => n.startsWith("bundled-out")),
        [],
        "no partial output and no bundled config folder left behind",
      );
    }
  });

  test("a file without its VAE takes the VAE from --config when it has weights, else names what is missing", () => {
    const folder = join(tmp, "sd15-novae");
    writeTinyCheckpoint(folder, { family: "sd15", seed: 18 });
    const full = join(tmp, "sd15-full.safetensors");
    makeSingleFile(folder, "sd15", full);
    const entries = readSafetensorsHeader(full).entries.filter((e) => !e.name.startsWith("first_stage_model."));
    const noVae = join(tmp, "sd15-novae.safetensors");
    writeSafetensors(noVae, entries.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, data: readTensorBytes(e) })));
    const r = convertSingleFile(noVae, { configDir: folder, out: join(tmp, "novae-out") });
    assert.deepEqual(r.fromConfig, ["vae"]);
    rmSync(join(folder, "vae", "diffusion_pytorch_model.safetensors"));
    assert.throws(
      () => convertSingleFile(noVae, { configDir: folder, out: join(tmp, "novae-out-2") }),
      (e: unknown) => e instanceof EaselError && e.code === "E_CHECKPOINT_INVALID" && /has no weights for vae/.test(e.message),
    );
    assert.throws(() => convertSingleFile(noVae, { out: join(tmp, "x") }), (e: unknown) => e instanceof EaselError && /bundled SD1\.5 configs.*pass --config DIR/.test(e.message));
    const sd3 = join(tmp, "sd3.safetensors");
    writeSafetensors(sd3, [{ name: "model.diffusion_model.joint_blocks.0.x.weight", dtype: "F32", shape: [1], data: new Uint8Array(4) }]);
    assert.throws(
      () => convertSingleFile(sd3, { configDir: folder, out: join(tmp, "y") }),
      (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && /is a StableDiffusionPipeline, not a sd3 pipeline folder/.test(e.message),
    );
  });
});
