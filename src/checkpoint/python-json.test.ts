/**
 * Configs as Python's json module writes them: `Infinity`, `-Infinity` and `NaN` load from every checkpoint file
 * Easel reads (model_index.json, component config.json, scheduler_config.json, tokenizer files), keep their meaning
 * (DPM-Solver's `lambda_min_clipped: -Infinity` means "no clipping", as in diffusers), and malformed files still fail.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { throwsEasel } from "../../test/helpers/errors.ts";
import { readComponentConfig } from "../models/components/component.ts";
import { loadClipTokenizer } from "../models/text/clip-tokenizer.ts";
import { loadT5Tokenizer } from "../models/text/t5-tokenizer.ts";
import { planSampling } from "../samplers/index.ts";
import { loadCheckpoint } from "./checkpoint.ts";
import { parsePythonJson } from "./python-json.ts";

const MODELS = "test/fixtures/models";
const root = mkdtempSync(join(tmpdir(), "easel-python-json-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** JSON text as Python's `json.dumps(obj, indent=2)` writes it: non-finite numbers as bare literals. */
function pythonDumps(v: unknown): string {
  const marks = new Map<string, string>([
    ["\u0000-inf", "-Infinity"],
    ["\u0000inf", "Infinity"],
    ["\u0000nan", "NaN"],
  ]);
  const text = JSON.stringify(
    v,
    (_k, x) => (typeof x !== "number" || Number.isFinite(x) ? x : Number.isNaN(x) ? "\u0000nan" : x > 0 ? "\u0000inf" : "\u0000-inf"),
    2,
  );
  return text.replace(/"\\u0000(-inf|inf|nan)"/g, (_m, k: string) => marks.get(`\u0000${k}`)!);
}


describe("parsePythonJson: JSON plus Python's Infinity, -Infinity and NaN", () => {
  test("the three literals, anywhere a value goes", () => {
    const v = parsePythonJson('{"a": -Infinity, "b": [Infinity, NaN, 1], "c": {"d": NaN}}') as Record<string, unknown>;
    assert.ok(Object.is(v.a, Number.NEGATIVE_INFINITY));
    const b = v.b as number[];
    assert.ok(Object.is(b[0], Number.POSITIVE_INFINITY) && Number.isNaN(b[1]) && b[2] === 1);
    assert.ok(Number.isNaN((v.c as { d: number }).d));
    assert.ok(Object.is(parsePythonJson("-Infinity"), Number.NEGATIVE_INFINITY));
    assert.ok(Number.isNaN(parsePythonJson(" NaN\n")));
    assert.equal(pythonDumps({ x: [Number.NEGATIVE_INFINITY, Number.NaN, Number.POSITIVE_INFINITY] }), '{\n  "x": [\n    -Infinity,\n    NaN,\n    Infinity\n  ]\n}');
  });

  test("beside a literal, the rest reads exactly as JSON.parse reads it", () => {
    for (const doc of [
      '{"s": "tab\\t \\"q\\" \\\\ \\/ \\u00e9 \\ud83d\\ude00", "n": [0, -0, 1.5e3, -2E-2, 12345678901234567890], "t": true, "f": false, "z": null}',
      '[[], {}, [{}], "", " \\n "]',
      '{"a": 1, "a": 2}',
      '{"__proto__": {"polluted": 1}}',
      ' \r\n\t{ "k" : [ 1 , 2 ] } \n',
    ]) {
      const mine = (parsePythonJson(`[NaN, ${doc}]`) as unknown[])[1];
      assert.deepEqual(mine, JSON.parse(doc), doc);
    }
    const proto = (parsePythonJson('[NaN, {"__proto__": {"polluted": 1}}]') as unknown[])[1] as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(proto), Object.prototype);
    assert.deepEqual(Object.keys(proto), ["__proto__"]);
    assert.ok(Object.is((parsePythonJson("[NaN, -0]") as number[])[1], -0));
  });

  test("whatever json.loads refuses is refused (no JSON5), naming line and column", () => {
    for (const doc of [
      "-NaN",
      "+Infinity",
      "nan",
      "inf",
      "infinity",
      "-infinity",
      "[NaN, -Inf]",
      "NaNx",
      "[Infinity,]",
      '{"a": NaN,}',
      "{'a': NaN}",
      "{a: NaN}",
      "[NaN] // comment",
      "/* c */ [NaN]",
      "[NaN, 0x10]",
      "[NaN, .5]",
      "[NaN, 1.]",
      "[NaN, 01]",
      '[NaN, "\\x41"]',
      '[NaN, "a\tb"]',
      '[NaN, "\\u12"]',
      "\ufeff[NaN]",
      "\u00a0[NaN]",
      "[NaN",
      '{"a": NaN',
      '["a", NaN, "unterminated]',
      "",
      "[NaN] [NaN]",
    ]) {
      assert.throws(() => parsePythonJson(doc), (e: unknown) => e instanceof SyntaxError && /line \d+ column \d+|JSON/.test(e.message), JSON.stringify(doc));
    }
    assert.throws(() => parsePythonJson('{\n  "a": -Infinity,\n  "b": nan\n}'), /line 3 column 8/);
  });
});

describe("checkpoint files with Python's literals", () => {
  const dir = join(root, "sd15");
  cpSync(join(MODELS, "sd15"), dir, { recursive: true });
  const schedules = parsePythonJson(readFileSync("test/fixtures/schedules/sd15_steps10.json", "utf8")) as {
    schedulers: Record<string, { class: string; config: Record<string, unknown>; timesteps: number[]; sigmas: number[] }>;
  };
  // diffusers' DPMSolverMultistepScheduler as it saves itself (lambda_min_clipped defaults to -inf), and its schedule.
  const dpm = schedules.schedulers.dpmpp_2m;
  const dpmConfig: Record<string, unknown> = { _class_name: dpm.class, _diffusers_version: "0.32.2", ...dpm.config };
  const writeScheduler = (cfg: Record<string, unknown>) => {
    const text = pythonDumps(cfg);
    writeFileSync(join(dir, "scheduler", "scheduler_config.json"), text);
    return text;
  };

  test("model_index.json, component config.json and scheduler_config.json with each literal load, values kept", () => {
    const index = JSON.parse(readFileSync(join(dir, "model_index.json"), "utf8"));
    writeFileSync(join(dir, "model_index.json"), pythonDumps({ ...index, _easel_nan: Number.NaN }));
    const vae = JSON.parse(readFileSync(join(dir, "vae", "config.json"), "utf8"));
    writeFileSync(join(dir, "vae", "config.json"), pythonDumps({ ...vae, _easel_inf: Number.POSITIVE_INFINITY, _easel_ninf: Number.NEGATIVE_INFINITY }));
    assert.match(writeScheduler(dpmConfig), /"lambda_min_clipped": -Infinity,/);
    const ck = loadCheckpoint(dir);
    assert.ok(Number.isNaN(ck.modelIndex._easel_nan));
    assert.ok(Object.is(ck.components.vae?.config._easel_inf, Number.POSITIVE_INFINITY));
    assert.ok(Object.is(ck.components.vae?.config._easel_ninf, Number.NEGATIVE_INFINITY));
    assert.equal(ck.components.vae?.config.latent_channels, vae.latent_channels);
    assert.ok(Object.is(ck.schedulerConfig.lambda_min_clipped, Number.NEGATIVE_INFINITY));
    assert.ok(Object.is(readComponentConfig(join(dir, "vae")).json._easel_ninf, Number.NEGATIVE_INFINITY));
  });

  test("lambda_min_clipped -Infinity: the same sampling plan as without the key, and diffusers' schedule", () => {
    writeScheduler(dpmConfig);
    const withKey = planSampling(loadCheckpoint(dir).schedulerConfig, undefined, 10);
    assert.ok(Object.is(withKey.config.lambda_min_clipped, Number.NEGATIVE_INFINITY));
    const without = { ...dpmConfig };
    delete without.lambda_min_clipped;
    writeScheduler(without);
    const withoutKey = planSampling(loadCheckpoint(dir).schedulerConfig, undefined, 10);
    assert.equal(withKey.className, "DPMSolverMultistepScheduler");
    assert.deepEqual(withKey.timesteps, withoutKey.timesteps);
    assert.deepEqual(withKey.sigmas, withoutKey.sigmas);
    // diffusers with -inf: searchsorted(flip(lambda_t), -inf) = 0, nothing clipped.
    assert.deepEqual(withKey.timesteps, dpm.timesteps);
    for (const [i, s] of dpm.sigmas.entries()) assert.ok(Math.abs(withKey.sigmas[i] - s) <= 1e-5 * Math.max(1, s), `sigma ${i}`);
    // A finite clip is read (so -Infinity is not merely ignored): the highest-noise timesteps go.
    writeScheduler({ ...dpmConfig, lambda_min_clipped: -2.5 });
    const clipped = planSampling(loadCheckpoint(dir).schedulerConfig, undefined, 10);
    assert.ok(clipped.timesteps[0] < dpm.timesteps[0], `first timestep ${clipped.timesteps[0]}`);
    writeScheduler(dpmConfig);
  });

  test("tokenizer files with NaN load and tokenize as before (tokenizer_config.json, tokenizer.json)", () => {
    const text = "a photo of an astronaut riding a horse, NaN Infinity";
    // CLIP, vocab.json + merges.txt
    const clipDir = join(root, "clip-tokenizer");
    cpSync(join(MODELS, "sd15", "tokenizer"), clipDir, { recursive: true });
    const want = loadClipTokenizer(clipDir).encodeForModel(text).ids;
    const cfg = JSON.parse(readFileSync(join(clipDir, "tokenizer_config.json"), "utf8"));
    writeFileSync(join(clipDir, "tokenizer_config.json"), pythonDumps({ ...cfg, _easel_nan: Number.NaN }));
    assert.deepEqual(loadClipTokenizer(clipDir).encodeForModel(text).ids, want);
    // CLIP, tokenizer.json only
    const clipJsonDir = join(root, "clip-tokenizer-json");
    cpSync(clipDir, clipJsonDir, { recursive: true });
    const vocab = JSON.parse(readFileSync(join(clipDir, "vocab.json"), "utf8"));
    const merges = readFileSync(join(clipDir, "merges.txt"), "utf8")
      .split("\n")
      .filter((l, i) => l.trim() && !(i === 0 && l.startsWith("#version")));
    rmSync(join(clipJsonDir, "vocab.json"));
    rmSync(join(clipJsonDir, "merges.txt"));
    writeFileSync(join(clipJsonDir, "tokenizer.json"), pythonDumps({ version: "1.0", model: { type: "BPE", dropout: Number.NaN, vocab, merges }, added_tokens: [] }));
    assert.deepEqual(loadClipTokenizer(clipJsonDir).encodeForModel(text).ids, want);
    // T5 (tokenizer.json + tokenizer_config.json)
    const t5Dir = join(root, "t5-tokenizer");
    cpSync(join(MODELS, "sd3", "tokenizer_3"), t5Dir, { recursive: true });
    const t5Want = loadT5Tokenizer(t5Dir).encodeForModel(text, 32).ids;
    for (const file of ["tokenizer.json", "tokenizer_config.json"]) {
      const j = JSON.parse(readFileSync(join(t5Dir, file), "utf8"));
      writeFileSync(join(t5Dir, file), pythonDumps({ ...j, _easel_nan: Number.NaN }));
    }
    assert.match(readFileSync(join(t5Dir, "tokenizer.json"), "utf8"), /"_easel_nan": NaN/);
    assert.deepEqual(loadT5Tokenizer(t5Dir).encodeForModel(text, 32).ids, t5Want);
  });

  test("a malformed file still fails with E_CHECKPOINT_INVALID naming the file and the place", () => {
    const bad = join(root, "bad");
    const fresh = () => {
      rmSync(bad, { recursive: true, force: true });
      cpSync(join(MODELS, "sd15"), bad, { recursive: true });
    };
    const cases: [string, string][] = [
      ["model_index.json", '{\n  "_class_name": "StableDiffusionPipeline",\n}'],
      [join("scheduler", "scheduler_config.json"), '{"_class_name": "PNDMScheduler", // diffusers never writes this\n "lambda_min_clipped": -Infinity}'],
      [join("scheduler", "scheduler_config.json"), '{"_class_name": "PNDMScheduler", "lambda_min_clipped": -inf}'],
      [join("unet", "config.json"), '{"sample_size": NaN, "in_channels": +Infinity}'],
      [join("vae", "config.json"), '{"scaling_factor": 0.18215'],
    ];
    for (const [file, text] of cases) {
      fresh();
      writeFileSync(join(bad, file), text);
      throwsEasel(() => loadCheckpoint(bad), "E_CHECKPOINT_INVALID", new RegExp(`${file.replace(/[.]/g, "\\.")}: not valid JSON \\(.*line \\d+ column \\d+`));
    }
    throwsEasel(() => readComponentConfig(join(bad, "vae")), "E_CHECKPOINT_INVALID", /vae\/config\.json: cannot read component config \(.*line 1 column 27/);
    fresh();
    writeFileSync(join(bad, "tokenizer", "tokenizer_config.json"), "{'model_max_length': 77}");
    throwsEasel(() => loadClipTokenizer(join(bad, "tokenizer")), "E_CHECKPOINT_INVALID", /tokenizer_config\.json: cannot read tokenizer file \(.*line 1 column 2/);
    const t5Bad = join(root, "t5-bad");
    cpSync(join(MODELS, "sd3", "tokenizer_3"), t5Bad, { recursive: true });
    writeFileSync(join(t5Bad, "tokenizer.json"), '{"model": {"type": "Unigram", "vocab": [["a", NaN],]}}');
    throwsEasel(() => loadT5Tokenizer(t5Bad), "E_CHECKPOINT_INVALID", /tokenizer\.json: cannot read tokenizer file \(.*line 1 column 52/);
  });
});
