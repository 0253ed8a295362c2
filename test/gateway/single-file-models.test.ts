/**
 * A single-file checkpoint lying in the models directory is registered under its file name, served from a folder
 * converted once into <models>/.converted/ with the configs of a model of the same family already there (else the
 * bundled standard ones); a replaced file converts again; a file whose shapes fit neither is skipped with the reason.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ModelDescription } from "../../src/engine/engine.ts";
import { discoverModels } from "../../src/gateway/registry.ts";
import { writeTinyCheckpoint } from "../../src/models/testing/tiny-checkpoint.ts";
import { makeSingleFile } from "../helpers/single-file.ts";

const description = { family: "sd15", kind: "vp", limits: {}, defaults: { width: 64, height: 64, steps: 20, guidanceScale: 7 }, aliases: [] } as unknown as ModelDescription;

test("single files in the models directory are converted once and registered under their name", async () => {
  const models = mkdtempSync(join(tmpdir(), "easel-single-models-"));
  try {
    writeTinyCheckpoint(join(models, "base"), { family: "sd15", seed: 3 });
    makeSingleFile(join(models, "base"), "sd15", join(models, "my-finetune.safetensors"));
    const skipped: string[] = [];
    const described: string[] = [];
    const discover = () =>
      discoverModels({
        modelsDir: models,
        entries: {},
        describe: async (dir) => {
          described.push(dir);
          return description;
        },
        onSkip: (dir, e) => skipped.push(`${dir}: ${(e as Error).message}`),
      });
    const registry = await discover();
    const m = registry.find("my-finetune");
    assert.ok(m && m.backend === "local");
    assert.match(m.dir, /\/\.converted\/my-finetune-[0-9a-f]{16}$/);
    assert.ok(existsSync(join(m.dir, "unet", "diffusion_pytorch_model.safetensors")));
    assert.deepEqual(skipped, []);

    // Found again without converting; a newer file converts anew and the old folder goes.
    const again = await discover();
    assert.equal(again.find("my-finetune")?.backend === "local" && (again.find("my-finetune") as { dir: string }).dir, m.dir);
    utimesSync(join(models, "my-finetune.safetensors"), new Date(), new Date(Date.now() + 5000));
    const third = (await discover()).find("my-finetune") as { dir: string };
    assert.notEqual(third.dir, m.dir);
    assert.deepEqual(readdirSync(join(models, ".converted")), [third.dir.split("/").at(-1)]);
  } finally {
    rmSync(models, { recursive: true, force: true });
  }
});

test("a single file with no model of its family to lend configs, and other widths than the bundled configs, is skipped with the reason", async () => {
  const models = mkdtempSync(join(tmpdir(), "easel-single-models-"));
  const other = mkdtempSync(join(tmpdir(), "easel-single-src-"));
  try {
    writeTinyCheckpoint(join(other, "xl"), { family: "sdxl", seed: 3 });
    makeSingleFile(join(other, "xl"), "sdxl", join(models, "lonely.safetensors"));
    const skipped: string[] = [];
    const registry = await discoverModels({ modelsDir: models, entries: {}, describe: async () => description, onSkip: (_d, e) => skipped.push((e as Error).message) });
    assert.equal(registry.find("lonely"), undefined);
    assert.equal(skipped.length, 1);
    assert.match(skipped[0], /^lonely\.safetensors does not fit Easel's bundled SDXL base 1\.0 configs \(stabilityai\/stable-diffusion-xl-base-1\.0\): tensor .*; pass --config DIR/);
  } finally {
    rmSync(models, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  }
});
