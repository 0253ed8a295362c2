import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EaselError } from "../../core/errors.ts";
import {
  clipWorkingBytes,
  planSd3Memory,
  type Sd3MemoryInput,
  sd3PeakBytes,
  t5WorkingBytes,
  transformerWorkingBytes,
  vaeWorkingBytes,
} from "./memory.ts";

const GiB = 1024 ** 3;

/**
 * SD3 medium as published (stabilityai/stable-diffusion-3-medium-diffusers): T5-XXL encoder 4.76B parameters of
 * which the 24 blocks' linears are 24 x (4 x 4096^2 + 3 x 4096 x 10240) and the embedding 32128 x 4096;
 * transformer 2.03B (24 heads of 64, patch 2); CLIP-L + CLIP-G 0.8B; VAE 84M (block_out_channels 128..512).
 */
const T5_LINEAR = 24 * (4 * 4096 * 4096 + 3 * 4096 * 10240);
const T5_ROWS = 24 * (4 * 4096 + 2 * 10240 + 4096);
const T5_PARAMS = 4.76e9;
const T5_INT8 = T5_LINEAR + T5_ROWS * 5 + (T5_PARAMS - T5_LINEAR) * 4;

function sd3Medium(totalGiB: number, freeGiB: number, t5Quantization: "none" | "int8" = "none"): Sd3MemoryInput {
  const size = { width: 1024, height: 1024 };
  return {
    weights: { t5: T5_PARAMS * 4, transformer: 2.03e9 * 4, clip: 0.8e9 * 4, vae: 84e6 * 4 },
    t5Int8Weights: T5_INT8,
    working: {
      clip: clipWorkingBytes(1280),
      t5: t5WorkingBytes({ dModel: 4096, dFf: 10240, numHeads: 64 }, 512, t5Quantization === "int8"),
      transformer: transformerWorkingBytes({ numHeads: 24, headDim: 64, patchSize: 2 }, { ...size, batch: 2, textTokens: 77 + 512 }),
      vae: vaeWorkingBytes([128, 256, 512, 512], size),
    },
    totalBytes: totalGiB * GiB,
    freeBytes: freeGiB * GiB,
    t5Quantization,
  };
}

describe("SD3 memory plan on SD3-medium sizes", () => {
  test("fp32 T5-XXL weighs 19.0 GB (17.7 GiB); int8 linears bring it to about a quarter plus the fp32 embedding", () => {
    assert.equal((T5_PARAMS * 4) / 1e9, 19.04);
    assert.ok(T5_LINEAR > 4.6e9 && T5_LINEAR < 4.65e9, `linears ${T5_LINEAR}`);
    assert.ok(T5_INT8 / (T5_PARAMS * 4) < 0.28, `int8 ratio ${T5_INT8 / (T5_PARAMS * 4)}`);
  });

  test("64 GiB: everything resident, fp32, nothing to report", () => {
    const plan = planSd3Memory(sd3Medium(64, 60));
    assert.deepEqual(plan.modes, { clip: "resident", t5: "resident", transformer: "resident", vae: "resident" });
    assert.equal(plan.t5, "fp32");
    assert.equal(plan.reloadBytes, 0);
    assert.equal(plan.warning, undefined);
    assert.ok(plan.peakBytes <= plan.budgetBytes);
  });

  test("24 GiB: T5 (and the transformer, which cannot sit beside it) are loaded per request and released, and that is reported", () => {
    const input = sd3Medium(24, 22);
    // Everything resident does not fit: the fp32 weights alone are over 30 GB.
    assert.ok(sd3PeakBytes({ ...input.weights }, input.working, new Set()) > 22 * GiB);
    const plan = planSd3Memory(input);
    assert.equal(plan.t5, "fp32", "T5 is never quantised unless configured");
    assert.equal(plan.modes.t5, "on-demand");
    assert.equal(plan.modes.transformer, "on-demand");
    assert.ok(plan.peakBytes <= plan.budgetBytes, `peak ${plan.peakBytes / GiB} GiB within ${plan.budgetBytes / GiB} GiB`);
    assert.equal(plan.warning?.code, "W_MEMORY_PLAN");
    assert.match(plan.warning?.message ?? "", /T5 \(17\.7 GiB fp32\)/);
    assert.match(plan.warning?.message ?? "", /loaded per request and released/);
    assert.match(plan.warning?.message ?? "", /24\.0 GiB total/);
    assert.equal(plan.t5Error, undefined);
  });

  test("24 GiB with int8 opted in: int8 T5 and everything else resident at 1024², an estimated peak under 20 GiB", () => {
    const plan = planSd3Memory(sd3Medium(24, 22, "int8"));
    assert.equal(plan.t5, "int8");
    assert.deepEqual(plan.modes, { clip: "resident", t5: "resident", transformer: "resident", vae: "resident" });
    assert.equal(plan.reloadBytes, 0, "nothing opened per request");
    assert.equal(plan.warning, undefined);
    // Weights 15.9 GiB (int8 T5 4.8) + the largest step's working memory (the VAE decode at 1024², 3.2 GiB).
    assert.ok(plan.peakBytes < 20 * GiB, `peak ${plan.peakBytes / GiB} GiB`);
    assert.ok(plan.peakBytes > 18 * GiB, `peak ${plan.peakBytes / GiB} GiB`);
  });

  test("20 GiB: fp32 T5 does not fit even per request; requests without T5 still run, and the error names both ways out", () => {
    const plan = planSd3Memory(sd3Medium(20, 18.8));
    assert.equal(plan.t5, "unavailable");
    assert.equal(plan.warning?.code, "W_MEMORY_PLAN");
    const e = plan.t5Error;
    assert.ok(e instanceof EaselError);
    assert.equal(e.code, "E_NOT_SUPPORTED");
    assert.match(e.message, /needs about 1\d\.\d GiB/);
    assert.match(e.message, /--t5-int8/);
    assert.match(e.message, /--no-t5/);
    // With int8 configured, the same machine runs T5.
    assert.equal(planSd3Memory(sd3Medium(20, 18.8, "int8")).t5, "int8");
  });

  test("8 GiB: the transformer alone does not fit; the load fails saying how much is needed and that --t5-int8 / --no-t5 do not help", () => {
    assert.throws(
      () => planSd3Memory(sd3Medium(8, 6)),
      (e: unknown) =>
        e instanceof EaselError &&
        e.code === "E_NOT_SUPPORTED" &&
        /needs about \d+\.\d GiB/.test(e.message) &&
        /7\.6 GiB fp32 weights/.test(e.message) &&
        /do not help/.test(e.message),
    );
  });

  test("the free memory decides, not only the total: a busy 64 GiB machine plans like a small one", () => {
    const plan = planSd3Memory(sd3Medium(64, 22));
    assert.equal(plan.modes.t5, "on-demand");
    assert.match(plan.warning?.message ?? "", /64\.0 GiB total/);
  });

  test("bad inputs are rejected by name", () => {
    assert.throws(() => planSd3Memory({ ...sd3Medium(24, 22), freeBytes: Number.NaN }), (e: unknown) => e instanceof EaselError && e.param === "memory.freeBytes");
    assert.throws(
      () => planSd3Memory({ ...sd3Medium(24, 22), t5Quantization: "int4" as "int8" }),
      (e: unknown) => e instanceof EaselError && e.param === "t5Quantization",
    );
  });

  test("peak model: resident weights plus the largest step's on-demand weights and working memory", () => {
    const working = { clip: 1, t5: 2, transformer: 30, vae: 4 };
    const weights = { clip: 10, t5: 100, transformer: 20, vae: 5 };
    assert.equal(sd3PeakBytes(weights, working, new Set()), 135 + 30);
    assert.equal(sd3PeakBytes(weights, working, new Set(["t5"])), 35 + 102);
    assert.equal(sd3PeakBytes(weights, working, new Set(["t5", "transformer", "clip", "vae"])), 102);
    // No T5 in the checkpoint: neither its weights nor its step count.
    assert.equal(sd3PeakBytes({ ...weights, t5: undefined }, working, new Set()), 35 + 30);
  });
});
