/**
 * The reference loops (diffusers 0.32, fake denoiser 0.5·x_in + 0.1, injected step noise): every scheduler id on
 * the vp / edm / flow configs. Checks model inputs, latents after every step and the final latents within
 * 1e-4 · max(1, max |ref|).
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { publishedSchedulerConfig } from "../../test/helpers/schedules.ts";
import { EaselError } from "../core/errors.ts";
import { ReplayNoise } from "../tensor/noise.ts";
import { planSampling, runSampling } from "./index.ts";

const LOOPS = join(import.meta.dirname, "../../test/fixtures/loops");
const BASE: Record<string, string> = { vp: "sd15", edm: "playground", flow: "sd3" };

function readF32(base: string): Float32Array {
  const b = readFileSync(`${base}.bin`);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const baseConfig = (config: string) => publishedSchedulerConfig(BASE[config]);

function assertClose(name: string, got: Float32Array, want: Float32Array): void {
  assert.equal(got.length, want.length, `${name}: length`);
  let maxRef = 0;
  let maxDiff = 0;
  let at = 0;
  for (let i = 0; i < want.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(want[i]));
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= maxDiff)) {
      maxDiff = d;
      at = i;
    }
  }
  const tol = 1e-4 * Math.max(1, maxRef);
  assert.ok(maxDiff <= tol, `${name}: max |diff| ${maxDiff} at ${at} (got ${got[at]}, want ${want[at]}) > ${tol}`);
}

/** Runs one reference loop; returns what the loop produced for comparison. */
async function runReferenceLoop(dir: string, config: string, id: string) {
  const c = JSON.parse(readFileSync(join(dir, "case.json"), "utf8").replace(/-Infinity|\bNaN\b/g, "null"));
  const init = readF32(join(LOOPS, config, "init_latents"));
  const shape = [1, 4, 8, 8];
  const draws = c.step_noise_draws > 0 ? readF32(join(dir, "step_noise")) : new Float32Array(0);
  const noise = new ReplayNoise(draws.length ? draws : new Float32Array(init.length), init.length);
  const plan = planSampling(baseConfig(config), id, 10);
  const modelIn: Float32Array[] = [];
  const after: Float32Array[] = [];
  let error: unknown = null;
  const final = await runSampling(
    plan,
    async (xIn) => {
      modelIn.push(xIn);
      const out = new Float32Array(xIn.length);
      for (let i = 0; i < xIn.length; i++) out[i] = Math.fround(Math.fround(0.5 * xIn[i]) + 0.1);
      return out;
    },
    init,
    { shape, noise, sdeNoise: noise, onStep: (_i, _n, x) => after.push(x) },
  ).catch((e: unknown) => {
    error = e;
    return null;
  });
  return { c, plan, modelIn, after, final, noise, error };
}

for (const config of ["vp", "edm", "flow"]) {
  for (const id of readdirSync(join(LOOPS, config)).filter((d) => statSync(join(LOOPS, config, d)).isDirectory())) {
    const dir = join(LOOPS, config, id);
    test(`loop ${config}/${id}`, async () => {
      const { c, plan, modelIn, after, final, noise, error } = await runReferenceLoop(dir, config, id);
      assert.equal(plan.className, c.scheduler.class);
      const size = 256;
      const refIn = readF32(join(dir, "model_in"));
      const refAfter = readF32(join(dir, "latents_after_step"));
      const refFinal = readF32(join(dir, "final_latents"));
      for (const [k, x] of after.entries()) assertClose(`latents_after_step[${k}]`, x, refAfter.subarray(k * size, (k + 1) * size));
      for (const [k, x] of modelIn.entries()) assertClose(`model_in[${k}]`, x, refIn.subarray(k * size, (k + 1) * size));
      if (refFinal.some((v) => !Number.isFinite(v))) {
        // diffusers diverges here: every finite step must match, then a clear error instead of NaN.
        assert.ok(error instanceof EaselError && error.code === "E_NOT_SUPPORTED", `expected a clear error, got ${String(error)}`);
        const firstBad = Array.from({ length: refAfter.length / size }, (_, k) => k).find((k) => !Number.isFinite(refAfter[k * size]));
        assert.equal(after.length, firstBad, "steps completed before the divergence");
        return;
      }
      if (error) throw error;
      assert.equal(modelIn.length, refIn.length / size, "number of denoiser calls");
      assertClose("final_latents", final as Float32Array, refFinal);
      if (c.step_noise_draws > 0) assert.equal(noise.used, c.step_noise_draws, "step noise draws consumed");
    });
  }
  if (config === "edm")
    test("loop edm/heun_karras: diffusers raises, so do we (no NaN)", async () => {
      assert.ok(!existsSync(join(LOOPS, "edm", "heun_karras")));
      const plan = planSampling(baseConfig("edm"), "heun_karras", 10);
      const x = new Float32Array(256).fill(0.5);
      const model = async (xIn: Float32Array) => xIn.map((v) => 0.5 * v + 0.1);
      await assert.rejects(runSampling(plan, model, x, { shape: [1, 4, 8, 8], noise: new ReplayNoise(x, 256) }), /IndexError/);
    });
}
