/**
 * `easel generate` as a user runs it: `node bin/easel.js generate ...` in a child process on the micro sd15
 * checkpoint, checked against the diffusers reference cases through the parity flags, plus seeds, img2img and the
 * one-line errors for bad input.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import sharp from "sharp";
import { expectClose, readRefFloat32 } from "../../test/helpers/tensors.ts";
import { outputPaths } from "./generate.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const BIN = join(ROOT, "bin/easel.js");
const MODEL = join(ROOT, "test/fixtures/models/sd15");
const CASES = join(ROOT, "test/fixtures/generate/sd15");
const run = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe("easel generate (child process)", () => {
  let tmp: string;
  let dataDir: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "easel-cli-generate-"));
    dataDir = join(tmp, "data");
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  /** Runs `easel generate` with a shared data dir (graph cache) and one ORT thread; never throws on exit codes. */
  async function generate(args: string[]): Promise<Result> {
    const argv = [BIN, "generate", "--data-dir", dataDir, "--threads", "1", "--no-progress", ...args];
    try {
      const r = await run(process.execPath, argv, { cwd: tmp, timeout: 180_000, encoding: "utf8" });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const err = e as { code?: number | string; stdout?: string; stderr?: string; killed?: boolean };
      assert.ok(!err.killed, `easel generate ${args.join(" ")} timed out`);
      return { code: typeof err.code === "number" ? err.code : -1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
    }
  }

  function ok(r: Result): { seed: number; family: string; files: string[] } {
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stderr}`);
    return JSON.parse(r.stdout.trim().split("\n").at(-1) as string);
  }

  async function decode(file: string) {
    return sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  }

  function caseInputs(name: string) {
    return JSON.parse(readFileSync(join(CASES, name, "case.json"), "utf8")).inputs;
  }

  test("parity flags: --init-latents + --dump-latents reproduce the pndm case's latents and image", async () => {
    const name = "txt2img_pndm_64x64";
    const inp = caseInputs(name);
    const dump = join(tmp, "dump-pndm");
    const out = join(tmp, "pndm.png");
    const res = ok(
      await generate([
        "--model", MODEL,
        "--prompt", inp.prompt,
        "--negative-prompt", inp.negative_prompt,
        "--steps", String(inp.num_inference_steps),
        "--guidance", String(inp.guidance_scale),
        "--width", String(inp.width),
        "--height", String(inp.height),
        "--init-latents", join(CASES, name, "init_latents.bin"),
        "--dump-latents", dump,
        "-o", out,
      ]),
    );
    assert.equal(res.family, "sd15");
    assert.deepEqual(res.files, [out]);
    assert.ok(existsSync(join(dump, "final_latents.bin")) && existsSync(join(dump, "final_latents.json")));
    const got = readRefFloat32(join(dump, "final_latents"));
    const ref = readRefFloat32(join(CASES, name, "final_latents"));
    assert.deepEqual(got.shape, ref.shape);
    expectClose(got.data, ref.data, { atol: 1e-3, rtol: 0, what: "final_latents" });

    const img = await decode(out);
    const refImg = await decode(join(CASES, name, "image.png"));
    assert.equal(img.info.width, refImg.info.width);
    assert.equal(img.info.height, refImg.info.height);
    let close = 0;
    for (let i = 0; i < refImg.data.length; i++) if (Math.abs(img.data[i] - refImg.data[i]) <= 1) close++;
    assert.ok(close / refImg.data.length >= 0.999, `${close}/${refImg.data.length} values within one level`);
  });

  test("--step-noise with --scheduler euler_a reproduces the ancestral case's latents", async () => {
    const name = "txt2img_euler_a_96x64";
    const inp = caseInputs(name);
    const dump = join(tmp, "dump-euler-a");
    ok(
      await generate([
        "--model", MODEL,
        "--prompt", inp.prompt,
        "--steps", String(inp.num_inference_steps),
        "--guidance", String(inp.guidance_scale),
        "--scheduler", inp.scheduler_name,
        "--width", String(inp.width),
        "--height", String(inp.height),
        "--init-latents", join(CASES, name, "init_latents"),
        "--step-noise", join(CASES, name, "step_noise"),
        "--dump-latents", dump,
        "-o", join(tmp, "euler-a.png"),
      ]),
    );
    const got = readRefFloat32(join(dump, "final_latents"));
    const ref = readRefFloat32(join(CASES, name, "final_latents"));
    assert.deepEqual(got.shape, ref.shape);
    expectClose(got.data, ref.data, { atol: 1e-3, rtol: 0, what: "final_latents" });
  });

  test("--seed 42 -n 2 writes out_0.png and out_1.png; the same seed gives the same files, another seed others", async () => {
    const common = ["--model", MODEL, "--prompt", "a red cube", "--steps", "3", "--width", "64", "--height", "64", "-n", "2"];
    const runTo = async (dir: string, seed: number) => {
      const res = ok(await generate([...common, "--seed", String(seed), "-o", join(tmp, dir, "out.png")]));
      assert.equal(res.seed, seed);
      const files = [join(tmp, dir, "out_0.png"), join(tmp, dir, "out_1.png")];
      assert.deepEqual(res.files, files);
      return files.map((f) => readFileSync(f));
    };
    const a = await runTo("seed-a", 42);
    const b = await runTo("seed-b", 42);
    const c = await runTo("seed-c", 43);
    assert.ok(a[0].equals(b[0]) && a[1].equals(b[1]), "same seed, same PNG bytes");
    assert.ok(!a[0].equals(a[1]), "the two images of a batch differ");
    assert.ok(!a[0].equals(c[0]) && !a[1].equals(c[1]), "another seed, other images");
    const meta = await sharp(a[0]).metadata();
    assert.equal(meta.width, 64);
    assert.equal(meta.height, 64);
  });

  test("--init-image with --strength 0.5 writes an image of the init image's size", async () => {
    const init = join(tmp, "init.png");
    const w = 72;
    const h = 48;
    const px = Buffer.alloc(w * h * 3);
    for (let i = 0; i < px.length; i++) px[i] = (i * 7) % 256;
    await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(init);
    const out = join(tmp, "img2img.png");
    const res = ok(await generate(["--model", MODEL, "--prompt", "a red cube", "--steps", "4", "--seed", "5", "--init-image", init, "--strength", "0.5", "-o", out]));
    assert.equal(res.seed, 5);
    const meta = await sharp(out).metadata();
    assert.equal(meta.width, w);
    assert.equal(meta.height, h);
  });

  test("bad input exits non-zero with one clear line and no stack trace", async () => {
    const base = ["--prompt", "x", "--steps", "2", "-o", join(tmp, "bad.png")];
    const cases: { args: string[]; expect: RegExp[] }[] = [
      { args: ["--model", MODEL, ...base, "--width", "60"], expect: [/width/, /multiple of 8/] },
      { args: ["--model", MODEL, "--prompt", "x", "--steps", "0"], expect: [/steps/, /from 1 to 1000/] },
      { args: ["--model", join(tmp, "no-such-model"), ...base], expect: [/no-such-model/, /does not exist/] },
      { args: ["--model", MODEL, ...base, "--scheduler", "K_NOPE"], expect: [/scheduler/i, /K_NOPE/] },
      { args: ["--model", MODEL, ...base, "--init-image", join(tmp, "missing.png")], expect: [/missing\.png/] },
    ];
    // Independent processes; run them together to save start-up time.
    const results = await Promise.all(cases.map((c) => generate(c.args)));
    for (const [i, r] of results.entries()) {
      const what = cases[i].args.slice(-2).join(" ");
      assert.notEqual(r.code, 0, `${what}: exit code`);
      const lines = r.stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("npm warn"));
      assert.equal(lines.length, 1, `${what}: stderr should be one line:\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: stack trace`);
      for (const re of cases[i].expect) assert.match(lines[0], re, `${what}: ${lines[0]}`);
      assert.equal(r.stdout.trim(), "", `${what}: nothing on stdout`);
    }
    assert.ok(!existsSync(join(tmp, "bad.png")));
  });
});

test("outputPaths numbers files only for batches", () => {
  assert.deepEqual(outputPaths("out.png", 1), ["out.png"]);
  assert.deepEqual(outputPaths("dir/out.png", 3), ["dir/out_0.png", "dir/out_1.png", "dir/out_2.png"]);
});
