import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { throwsEasel } from "../../test/helpers/errors.ts";
import { writeSafetensors } from "../graph/safetensors.ts";
import { familyFor } from "../models/index.ts";
import { loadCheckpoint } from "./checkpoint.ts";

const MODELS = "test/fixtures/models";
const root = mkdtempSync(join(tmpdir(), "easel-ckpt-"));
after(() => rmSync(root, { recursive: true, force: true }));

/**
 * A checkpoint directory with the fixture model's model_index.json, scheduler, tokenizers and vae, and a one-tensor
 * stand-in for every other model component (detection reads configs and headers only).
 */
function makeCheckpoint(family: string, name = family): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const index = JSON.parse(readFileSync(join(MODELS, family, "model_index.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(join(dir, "model_index.json"), JSON.stringify(index));
  for (const [comp, spec] of Object.entries(index)) {
    if (!Array.isArray(spec) || spec[0] === null) continue;
    const cls = spec[1] as string;
    if (comp === "vae" || comp === "scheduler" || cls.includes("Tokenizer")) {
      cpSync(join(MODELS, family, comp), join(dir, comp), { recursive: true });
    } else {
      mkdirSync(join(dir, comp));
      writeFileSync(join(dir, comp, "config.json"), JSON.stringify({ _class_name: cls }));
      const file = comp.startsWith("text_encoder") ? "model.safetensors" : "diffusion_pytorch_model.safetensors";
      writeSafetensors(join(dir, comp, file), [{ name: "w", dtype: "F32", shape: [1], data: new Uint8Array(4) }]);
    }
  }
  return dir;
}


describe("loadCheckpoint: family detection on the reference model layouts", () => {
  const expected = {
    sd15: ["StableDiffusionPipeline", "PNDMScheduler"],
    sdxl: ["StableDiffusionXLPipeline", "EulerDiscreteScheduler"],
    playground: ["StableDiffusionXLPipeline", "EDMDPMSolverMultistepScheduler"],
    sd3: ["StableDiffusion3Pipeline", "FlowMatchEulerDiscreteScheduler"],
  } as const;
  for (const [family, [pipe, sched]] of Object.entries(expected)) {
    test(family, () => {
      const ck = loadCheckpoint(makeCheckpoint(family));
      assert.equal(familyFor(ck).id, family);
      assert.equal(ck.pipelineClass, pipe);
      assert.equal(ck.schedulerClass, sched);
      assert.equal(ck.schedulerConfig._class_name, sched);
      assert.equal(ck.components.vae?.className, "AutoencoderKL");
      assert.ok(ck.components.vae!.weights.has("decoder.conv_in.weight"));
      assert.ok(ck.tokenizers.tokenizer.dir.endsWith("tokenizer"));
      assert.equal(ck.components.image_encoder, null);
    });
  }

  test("sd3 lists T5 and its tokenizer; null T5 is allowed", () => {
    const ck = loadCheckpoint(makeCheckpoint("sd3", "sd3-t5"));
    assert.equal(ck.components.text_encoder_3?.className, "T5EncoderModel");
    assert.equal(ck.tokenizers.tokenizer_3.className, "T5Tokenizer");
    const dir = makeCheckpoint("sd3", "sd3-no-t5");
    const index = JSON.parse(readFileSync(join(dir, "model_index.json"), "utf8"));
    index.text_encoder_3 = [null, null];
    index.tokenizer_3 = [null, null];
    writeFileSync(join(dir, "model_index.json"), JSON.stringify(index));
    rmSync(join(dir, "text_encoder_3"), { recursive: true });
    const noT5 = loadCheckpoint(dir);
    assert.equal(familyFor(noT5).id, "sd3");
    assert.equal(noT5.components.text_encoder_3, null);
    assert.equal(noT5.tokenizers.tokenizer_3, undefined);
  });

  test("an SDXL pipeline whose VAE has latents_mean/std is Playground even with another scheduler", () => {
    const dir = makeCheckpoint("playground", "pg-euler");
    cpSync(join(MODELS, "sdxl", "scheduler"), join(dir, "scheduler"), { recursive: true });
    assert.equal(familyFor(loadCheckpoint(dir)).id, "playground");
  });
});

describe("loadCheckpoint: the complete fixture checkpoints", () => {
  test("sd15 with variants: plain files by default, fp16 when asked", () => {
    const ck = loadCheckpoint(join(MODELS, "sd15"));
    assert.equal(familyFor(ck).id, "sd15");
    assert.equal(ck.components.unet?.variant, undefined);
    assert.equal(ck.components.vae?.weights.get("decoder.conv_in.weight")?.dtype, "F32");
    const h = loadCheckpoint(join(MODELS, "sd15"), { variant: "fp16" });
    assert.equal(h.components.vae?.variant, "fp16");
    assert.equal(h.components.vae?.weights.get("decoder.conv_in.weight")?.dtype, "F16");
    assert.equal(h.components.text_encoder?.variant, "fp16");
    const b = loadCheckpoint(join(MODELS, "sd15"), { variant: "bf16" });
    assert.equal(b.components.text_encoder?.variant, "bf16");
    assert.equal(b.components.vae?.variant, undefined, "components without the variant load their plain files");
  });

  test("sdxl", () => {
    const ck = loadCheckpoint(join(MODELS, "sdxl"));
    assert.equal(familyFor(ck).id, "sdxl");
    assert.equal(ck.modelIndex.force_zeros_for_empty_prompt, true);
    assert.deepEqual(Object.keys(ck.tokenizers).sort(), ["tokenizer", "tokenizer_2"]);
  });
});

describe("loadCheckpoint: errors name the file", () => {
  test("missing directory, missing or broken model_index.json", () => {
    throwsEasel(() => loadCheckpoint(join(root, "nowhere")), "E_CHECKPOINT_INVALID", /nowhere: checkpoint directory does not exist/);
    mkdirSync(join(root, "empty"));
    throwsEasel(() => loadCheckpoint(join(root, "empty")), "E_CHECKPOINT_INVALID", /model_index\.json: file is missing/);
    writeFileSync(join(root, "empty", "model_index.json"), "{");
    throwsEasel(() => loadCheckpoint(join(root, "empty")), "E_CHECKPOINT_INVALID", /model_index\.json: not valid JSON/);
    const single = join(root, "model.safetensors");
    writeFileSync(single, "x");
    throwsEasel(() => loadCheckpoint(single), "E_NOT_SUPPORTED", /single-file checkpoints/);
  });

  test("unsupported pipeline class", () => {
    const dir = makeCheckpoint("sd15", "flux");
    const index = JSON.parse(readFileSync(join(dir, "model_index.json"), "utf8"));
    index._class_name = "FluxPipeline";
    writeFileSync(join(dir, "model_index.json"), JSON.stringify(index));
    throwsEasel(() => familyFor(loadCheckpoint(dir)), "E_NOT_SUPPORTED", /pipeline class "FluxPipeline" is not supported/);
  });

  test("missing component folder, config, weights", () => {
    const dir = makeCheckpoint("sd15", "broken");
    rmSync(join(dir, "vae", "config.json"));
    throwsEasel(() => loadCheckpoint(dir), "E_CHECKPOINT_INVALID", /vae\/config\.json: file is missing/);
    cpSync(join(MODELS, "sd15", "vae"), join(dir, "vae"), { recursive: true });
    rmSync(join(dir, "unet", "diffusion_pytorch_model.safetensors"));
    throwsEasel(() => loadCheckpoint(dir), "E_CHECKPOINT_INVALID", /unet: no safetensors weights found/);
    rmSync(join(dir, "unet"), { recursive: true });
    throwsEasel(() => loadCheckpoint(dir), "E_CHECKPOINT_INVALID", /unet: component folder "unet" named in model_index\.json is missing/);
  });

  test("SDXL without its first text encoder (refiner layout) is rejected", () => {
    const dir = makeCheckpoint("sdxl", "refiner");
    const index = JSON.parse(readFileSync(join(dir, "model_index.json"), "utf8"));
    index.text_encoder = [null, null];
    index.tokenizer = [null, null];
    writeFileSync(join(dir, "model_index.json"), JSON.stringify(index));
    throwsEasel(() => familyFor(loadCheckpoint(dir)), "E_NOT_SUPPORTED", /without "text_encoder"/);
  });
});
