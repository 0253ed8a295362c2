/** Model discovery (models dir folders + config entries) and name lookup, with a fake `describe`. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { familyKind, familyLimits } from "../../test/helpers/models.ts";
import { EaselError } from "../core/errors.ts";
import type { ModelDescription } from "../engine/engine.ts";
import { describeOpenAiModel } from "../providers/openai/models.ts";
import { describeSegmindModel } from "../providers/segmind/models.ts";
import { type DiscoverOptions, discoverModels, ModelRegistry } from "./registry.ts";

const SD15: ModelDescription = {
  family: "sd15",
  kind: "vp",
  limits: familyLimits("sd15"),
  defaults: { width: 512, height: 512, steps: 50, guidanceScale: 7.5 },
  aliases: ["sd15", "stable-diffusion-1.5"],
};
const PLAYGROUND: ModelDescription = {
  family: "playground",
  kind: "edm",
  limits: familyLimits("playground"),
  defaults: { width: 1024, height: 1024, steps: 50, guidanceScale: 3, scheduler: "edm_dpmpp_2m" },
  aliases: ["playground-v2.5", "Playground_v2.5"],
};

/** A diffusers-looking folder (only model_index.json: the fake describe never reads further). */
function checkpointDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "model_index.json"), JSON.stringify({ _class_name: "StableDiffusionPipeline" }));
  return dir;
}

describe("discoverModels", () => {
  let root: string;
  let modelsDir: string;
  let elsewhere: string;
  const described: string[] = [];
  const fakeDescribe = async (dir: string): Promise<ModelDescription> => {
    described.push(dir);
    const name = basename(dir);
    if (name.startsWith("broken")) throw new EaselError("E_CHECKPOINT_INVALID", `${dir}/unet/config.json: file is missing`);
    return name.includes("playground") ? PLAYGROUND : SD15;
  };
  const opts = (o: Partial<DiscoverOptions> = {}): DiscoverOptions => ({ modelsDir, entries: {}, describe: fakeDescribe, now: () => 1700000000, ...o });

  before(() => {
    root = mkdtempSync(join(tmpdir(), "easel-registry-"));
    modelsDir = join(root, "models");
    elsewhere = join(root, "elsewhere");
    checkpointDir(join(modelsDir, "my-sd15"));
    checkpointDir(join(modelsDir, "playground-local"));
    checkpointDir(join(modelsDir, "broken-one"));
    checkpointDir(join(modelsDir, "nested", "inner-sd15"));
    mkdirSync(join(modelsDir, "not-a-model"));
    writeFileSync(join(modelsDir, "not-a-model", "README.md"), "no model_index.json here");
    writeFileSync(join(modelsDir, "stray-file.safetensors"), "x");
    checkpointDir(join(elsewhere, "absolute-sd15"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test("folders become models under their names with their family's aliases; broken folders are skipped", async () => {
    const skipped: [string, unknown][] = [];
    const reg = await discoverModels(opts({ onSkip: (dir, e) => skipped.push([dir, e]) }));
    assert.deepEqual(
      reg.list().map((m) => m.id),
      ["my-sd15", "playground-local"],
    );
    const sd = reg.find("my-sd15");
    assert.ok(sd);
    assert.equal(sd.backend, "local");
    assert.equal(sd.dir, join(modelsDir, "my-sd15"));
    assert.deepEqual(sd.info, {
      id: "my-sd15",
      family: "sd15",
      kind: "vp",
      backend: "local",
      aliases: ["sd15", "stable-diffusion-1.5"],
      defaults: { width: 512, height: 512, steps: 50, guidanceScale: 7.5, scheduler: undefined },
      limits: familyLimits("sd15"),
      created: 1700000000,
    });
    assert.equal(reg.find("playground-local")?.info.defaults.scheduler, "edm_dpmpp_2m");
    // A .safetensors file is taken for a single-file checkpoint: one that is not readable is skipped with its reason too.
    assert.deepEqual(
      skipped.map(([dir]) => dir),
      [join(modelsDir, "broken-one"), join(modelsDir, "stray-file.safetensors")],
    );
    assert.ok(skipped.every(([, e]) => e instanceof EaselError && e.code === "E_CHECKPOINT_INVALID"));
    // Folders without model_index.json, nested folders and files are never described.
    assert.ok(!described.some((d) => d.includes("not-a-model") || d.includes("inner-sd15") || d.includes("stray-file")));
  });

  test("config entries: relative paths resolve against the models dir, absolute paths are kept, aliases added", async () => {
    const reg = await discoverModels(
      opts({
        entries: {
          "house-style": { path: "nested/inner-sd15", aliases: ["house"] },
          "far-away": { path: join(elsewhere, "absolute-sd15"), aliases: [] },
          // The same folder the directory scan would find: registered once, under the entry's name.
          "pg-v25": { path: "playground-local", aliases: ["pg"] },
        },
      }),
    );
    const ids = reg.list().map((m) => m.id);
    assert.deepEqual(ids, ["house-style", "far-away", "pg-v25", "my-sd15"]);
    assert.equal(reg.find("house-style")?.dir, join(modelsDir, "nested", "inner-sd15"));
    assert.equal(reg.find("far-away")?.dir, join(elsewhere, "absolute-sd15"));
    assert.deepEqual(reg.find("house-style")?.info.aliases, ["house", "sd15", "stable-diffusion-1.5"]);
    assert.equal(reg.find("pg")?.info.id, "pg-v25");
    assert.equal(reg.find("playground-local"), undefined, "a folder an entry already registers is not registered again");
  });

  test("a relative models dir or a trailing slash still registers an entry's folder once", async () => {
    const rel = relative(process.cwd(), modelsDir);
    const entries = { mine: { path: "my-sd15", aliases: [] }, slash: { path: `${join(modelsDir, "playground-local")}/`, aliases: [] } };
    const reg = await discoverModels(opts({ modelsDir: rel, entries }));
    const dirs = reg.list().map((m) => reg.find(m.id)?.dir);
    assert.equal(reg.find("mine")?.dir, join(modelsDir, "my-sd15"), "absolute, so the engine caches one pipeline per folder");
    assert.equal(new Set(dirs).size, dirs.length, `one model per folder: ${dirs.join(", ")}`);
    assert.deepEqual(
      reg.list().map((m) => m.id),
      ["mine", "slash"],
    );
  });

  test("an entry without a path, provider or targets is E_INPUT_INVALID; without describeUpstream a provider entry is E_NOT_SUPPORTED", async () => {
    await assert.rejects(
      discoverModels(opts({ entries: { "dall-e-3": { provider: "openai", aliases: [] } } })),
      (e: unknown) => e instanceof EaselError && e.code === "E_NOT_SUPPORTED" && e.param === "models.entries.dall-e-3.provider",
    );
    await assert.rejects(
      discoverModels(opts({ entries: { empty: { aliases: [] } } })),
      (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === "models.entries.empty",
    );
  });

  const describeUpstream = (provider: string, upstreamModel: string) => {
    if (provider === "segmind") return { providerType: "segmind", spec: describeSegmindModel(upstreamModel, { id: provider }) };
    if (provider === "openai") return { providerType: "openai", spec: describeOpenAiModel(upstreamModel, { id: provider, easelExtensions: false }) };
    throw new EaselError("E_INPUT_INVALID", `provider "${provider}" is not configured`);
  };

  test("upstream entries: the provider type's spec, backend = provider id, targets, kind override, fallbacks", async () => {
    const reg = await discoverModels(
      opts({
        describeUpstream,
        entries: {
          "pg25-remote": { provider: "segmind", upstreamModel: "playground-v2.5", fallbacks: ["playground-local"], aliases: ["pg-r"] },
          "gpt-image-1": { provider: "openai", aliases: [] },
          balanced: {
            targets: [
              { provider: "openai", upstreamModel: "gpt-image-1", weight: 3 },
              { provider: "openai", upstreamModel: "gpt-image-1-mini", weight: 1 },
            ],
            kind: "flow",
            aliases: [],
          },
        },
      }),
    );
    const pg = reg.find("pg-r");
    assert.ok(pg?.backend === "upstream");
    assert.equal(pg.info.id, "pg25-remote");
    assert.equal(pg.info.backend, "segmind");
    assert.equal(pg.info.kind, "edm");
    assert.deepEqual(pg.info.defaults, { width: 1024, height: 1024, steps: 25, guidanceScale: 3 });
    assert.deepEqual(pg.targets, [{ provider: "segmind", providerType: "segmind", upstreamModel: "playground-v2.5", weight: 1 }]);
    assert.deepEqual(pg.fallbacks, ["playground-local"]);
    const gpt = reg.find("gpt-image-1");
    assert.ok(gpt?.backend === "upstream");
    assert.equal(gpt.targets[0].upstreamModel, "gpt-image-1", "upstreamModel defaults to the entry's name");
    assert.equal(gpt.info.limits.maxImages, 10);
    const balanced = reg.find("balanced");
    assert.ok(balanced?.backend === "upstream");
    assert.equal(balanced.info.kind, "flow");
    assert.deepEqual(balanced.targets.map((t) => [t.upstreamModel, t.weight]), [["gpt-image-1", 3], ["gpt-image-1-mini", 1]]);
    assert.ok(reg.find("playground-local")?.backend === "local", "local folders are still registered beside upstream models");
  });

  test("an upstream entry named like a folder keeps the name; the folder is skipped with a reason, not listed twice", async () => {
    const skipped: string[] = [];
    const reg = await discoverModels(
      opts({
        describeUpstream,
        entries: { "my-sd15": { provider: "openai", upstreamModel: "sd15", aliases: [] } },
        onSkip: (dir, e) => skipped.push(`${basename(dir)}: ${(e as Error).message}`),
      }),
    );
    assert.deepEqual(reg.list().map((m) => `${m.id}:${m.backend}`), ["my-sd15:openai", "playground-local:local"]);
    assert.ok(skipped.some((s) => s.startsWith("my-sd15: models.entries.my-sd15 already uses the name")), skipped.join("\n"));
  });

  test("an unknown provider, an unknown upstream model or a fallback that is not registered stops discovery, naming the entry", async () => {
    await assert.rejects(
      discoverModels(opts({ describeUpstream, entries: { x: { provider: "nowhere", aliases: [] } } })),
      (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === "models.entries.x.provider" && /nowhere/.test(e.message),
    );
    await assert.rejects(
      discoverModels(opts({ describeUpstream, entries: { x: { provider: "segmind", upstreamModel: "sdxl-mystery", aliases: [] } } })),
      (e: unknown) => e instanceof EaselError && e.param === "models.entries.x.provider" && /sdxl-mystery/.test(e.message),
    );
    await assert.rejects(
      discoverModels(opts({ describeUpstream, entries: { x: { provider: "segmind", upstreamModel: "playground-v2.5", fallbacks: ["nope"], aliases: [] } } })),
      (e: unknown) => e instanceof EaselError && e.param === "models.entries.x.fallbacks.0" && /"nope"/.test(e.message),
    );
    await assert.rejects(
      discoverModels(opts({ describeUpstream, entries: { x: { provider: "segmind", upstreamModel: "playground-v2.5", fallbacks: ["x"], aliases: [] } } })),
      (e: unknown) => e instanceof EaselError && /itself/.test(e.message),
    );
  });

  test("a broken explicit entry fails discovery instead of disappearing", async () => {
    await assert.rejects(
      discoverModels(opts({ entries: { bad: { path: "broken-one", aliases: [] } } })),
      (e: unknown) => e instanceof EaselError && e.code === "E_CHECKPOINT_INVALID",
    );
  });

  test("the built-in model is always registered and listed first, unless models.default names another", async () => {
    const builtin = { id: "easel-shapes", dir: join(elsewhere, "absolute-sd15"), description: "the built-in one" };
    const reg = await discoverModels(opts({ builtin }));
    assert.equal(reg.list()[0].id, "easel-shapes");
    assert.equal(reg.list()[0].description, "the built-in one");
    assert.deepEqual(reg.list().slice(1).map((m) => m.id), ["my-sd15", "playground-local"]);
    const other = await discoverModels(opts({ builtin, defaultModel: "Playground-Local" }));
    assert.deepEqual(other.list().map((m) => m.id), ["playground-local", "my-sd15", "easel-shapes"]);
    await assert.rejects(
      discoverModels(opts({ builtin, defaultModel: "nope" })),
      (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === "models.default",
    );
    // A configured model with the built-in's name wins; the built-in is not listed twice.
    const shadow = await discoverModels(opts({ builtin, entries: { "easel-shapes": { path: "my-sd15", aliases: [] } } }));
    assert.equal(shadow.list().filter((m) => m.id === "easel-shapes").length, 1);
    assert.equal(shadow.find("easel-shapes")?.dir, join(modelsDir, "my-sd15"));
  });

  test("models.defaultAliases: OpenAI's names answer with the default model, unless a model already has the name", async () => {
    const builtin = { id: "easel-shapes", dir: join(elsewhere, "absolute-sd15"), description: "the built-in one" };
    const names = ["dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1.5"];
    const reg = await discoverModels(opts({ builtin, defaultAliases: names }));
    for (const n of names) assert.equal(reg.find(n)?.info.id, "easel-shapes", n);
    assert.equal(reg.find("DALL-E-3")?.info.id, "easel-shapes", "case-insensitive like every name");
    assert.deepEqual(reg.list()[0].aliases.slice(-4), names, "listed with the model (GET /v1/models)");
    // An entry's alias, or an entry named like one, keeps the name; the default model gets the others.
    const mapped = await discoverModels(
      opts({
        builtin,
        defaultModel: "Playground-Local",
        defaultAliases: names,
        entries: { "gpt-image-1": { path: "my-sd15", aliases: ["DALL-E-3"] } },
      }),
    );
    assert.equal(mapped.find("dall-e-3")?.info.id, "gpt-image-1");
    assert.equal(mapped.find("gpt-image-1")?.dir, join(modelsDir, "my-sd15"));
    assert.equal(mapped.find("dall-e-2")?.info.id, "playground-local");
    assert.equal(mapped.find("gpt-image-1.5")?.info.id, "playground-local");
    assert.ok(!mapped.find("playground-local")?.info.aliases.includes("dall-e-3"));
    const off = await discoverModels(opts({ builtin, defaultAliases: [] }));
    assert.equal(off.find("dall-e-3"), undefined);
  });

  test("a missing models dir gives only the entries", async () => {
    const reg = await discoverModels(
      opts({ modelsDir: join(root, "nope"), entries: { far: { path: join(elsewhere, "absolute-sd15"), aliases: [] } } }),
    );
    assert.deepEqual(
      reg.list().map((m) => m.id),
      ["far"],
    );
  });
});

describe("ModelRegistry lookup", () => {
  const model = (id: string, family: string, aliases: string[]) => ({
    backend: "local" as const,
    dir: `/models/${id}`,
    info: {
      id,
      family,
      kind: familyKind(family),
      backend: "local",
      aliases,
      defaults: { width: 64, height: 64, steps: 4, guidanceScale: 5 },
      limits: familyLimits(family),
      created: 0,
    },
  });
  const reg = new ModelRegistry([
    model("sd15", "sd15", ["stable-diffusion-1.5"]),
    model("dreamy", "sd15", ["sd15", "Dream"]),
    model("Playground-v2.5", "playground", ["pg25"]),
  ]);

  test("find by id, by alias and case-insensitively; ids beat aliases; first alias wins", () => {
    assert.equal(reg.find("sd15")?.dir, "/models/sd15", "an id beats another model's alias");
    assert.equal(reg.find("stable-diffusion-1.5")?.dir, "/models/sd15");
    assert.equal(reg.find("dream")?.dir, "/models/dreamy");
    assert.equal(reg.find("DREAMY")?.dir, "/models/dreamy");
    assert.equal(reg.find("playground-v2.5")?.dir, "/models/Playground-v2.5");
    assert.equal(reg.find("PG25")?.dir, "/models/Playground-v2.5");
    assert.equal(reg.find("nope"), undefined);
    assert.deepEqual(
      reg.list().map((m) => m.id),
      ["sd15", "dreamy", "Playground-v2.5"],
    );
  });

  test("require() names the model and the models dir", () => {
    assert.equal(reg.require("Dream", "/srv/easel/models").dir, "/models/dreamy");
    assert.throws(
      () => reg.require("sdxl-turbo", "/srv/easel/models"),
      (e: unknown) => {
        assert.ok(e instanceof EaselError);
        assert.equal(e.code, "E_MODEL_NOT_FOUND");
        assert.equal(e.param, "model");
        assert.match(e.message, /"sdxl-turbo"/);
        assert.match(e.message, /\/srv\/easel\/models/);
        assert.match(e.message, /model_index\.json/);
        return true;
      },
    );
  });
});
