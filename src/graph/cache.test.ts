import assert from "node:assert/strict";
import { copyFileSync, existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { GraphBuilder } from "./builder.ts";
import { type GraphCacheKey, getOrBuildGraph, graphCacheKey } from "./cache.ts";
import { openComponentWeights } from "./safetensors.ts";
import { createSafetensorsWeights } from "./weights.ts";

const FIX = join(import.meta.dirname, "../../test/fixtures/models/sd15/text_encoder");
const work = mkdtempSync(join(tmpdir(), "easel-cache-"));
after(() => rmSync(work, { recursive: true, force: true }));

function keyFor(file: string, over: Partial<GraphCacheKey> = {}): GraphCacheKey {
  return { component: "t", weightFiles: [file], config: { a: 1 }, builderVersion: "1", dtype: "float32", executionProvider: "cpu", ...over };
}

test("graph cache key changes with the weight file's mtime, the config, the version and the provider", () => {
  const file = join(work, "model.safetensors");
  copyFileSync(join(FIX, "model.safetensors"), file);
  const k0 = graphCacheKey(keyFor(file));
  assert.equal(graphCacheKey(keyFor(file)), k0);
  for (const over of [{ config: { a: 2 } }, { builderVersion: "2" }, { executionProvider: "cuda" }, { options: { hooks: true } }]) {
    assert.notEqual(graphCacheKey(keyFor(file, over)), k0, JSON.stringify(over));
  }
  utimesSync(file, new Date(), new Date(Date.now() + 5000));
  assert.notEqual(graphCacheKey(keyFor(file)), k0);
});

test("getOrBuildGraph builds once, links the weights beside the model and leaves no temporary directory", () => {
  const file = join(FIX, "model.safetensors");
  const cacheDir = join(work, "cache");
  let builds = 0;
  const build = () => {
    builds++;
    const g = new GraphBuilder({ name: "t", weights: createSafetensorsWeights(openComponentWeights(FIX), FIX) });
    g.output(g.op("Mul", [g.weight("text_model.final_layer_norm.weight", [32]), g.input("x", "float32", [1])]), "y");
    return g.build();
  };
  const a = getOrBuildGraph(cacheDir, keyFor(file), build);
  const b = getOrBuildGraph(cacheDir, keyFor(file), build);
  assert.equal(builds, 1);
  assert.deepEqual([a.hit, b.hit], [false, true]);
  assert.equal(a.modelPath, b.modelPath);
  const entries = readdirSync(dirname(a.modelPath));
  assert.ok(entries.includes("w0-model.safetensors"));
  assert.ok(lstatSync(join(dirname(a.modelPath), "w0-model.safetensors")).isSymbolicLink());
  assert.deepEqual(readdirSync(cacheDir).filter((n) => n.includes(".tmp-")), []);
  assert.ok(existsSync(join(dirname(a.modelPath), "key.json")));
});
