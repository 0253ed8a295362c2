import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { withinOneLevel } from "../../../test/helpers/images.ts";
import { expectClose, readRefFloat32 } from "../../../test/helpers/tensors.ts";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import { EaselError } from "../../core/errors.ts";
import type { HostTensor } from "../../runtime/session.ts";
import { createSession } from "../../runtime/session.ts";
import type { LoadedPipeline, RuntimeOptions } from "../pipeline/family.ts";
import { loadSd3, loadSd3TextEncoders, type Sd3TextEncoders } from "./pipeline.ts";

const MODEL = "test/fixtures/models/sd3";
const CASES = "test/fixtures/generate/sd3";


interface Call {
  inputs: Record<string, HostTensor>;
  output: Float32Array;
}

/** Stacks per-call tensors [k] -> one array, to compare with the reference's [n_calls, ...] files. */
function stack(calls: Call[], pick: (c: Call) => Float32Array): Float32Array {
  const parts = calls.map(pick);
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe("StableDiffusion3Pipeline parity (micro sd3 checkpoint)", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "easel-sd3-"));
  const rt: RuntimeOptions = { executionProvider: "cpu", intraOpThreads: 1, cacheDir };
  let pipe: LoadedPipeline;
  let text: Sd3TextEncoders;
  let calls: Call[] = [];
  before(async () => {
    const ckpt = loadCheckpoint(MODEL);
    pipe = await loadSd3(ckpt, rt, { observe: (inputs, output) => calls.push({ inputs, output }) });
    text = await loadSd3TextEncoders(ckpt, rt, (p) => createSession(p, { intraOpThreads: 1 }));
  });
  after(async () => {
    await pipe?.release();
    await text?.release();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  for (const name of ["txt2img_flow_euler_64x64", "txt2img_flow_euler_no_t5_96x64"]) {
    test(name, async () => {
      const dir = join(CASES, name);
      const c = JSON.parse(readFileSync(join(dir, "case.json"), "utf8"));
      const inp = c.inputs;
      const noT5 = inp.text_encoder_3 !== "enabled";
      const ref = (n: string) => readRefFloat32(join(dir, n));

      // encode_prompt
      const eo = { maxSequenceLength: inp.max_sequence_length, useT5: !noT5 };
      const pos = await text.encode([inp.prompt, inp.prompt, inp.prompt], eo);
      const neg = await text.encode([inp.negative_prompt, inp.negative_prompt, inp.negative_prompt], eo);
      const pe = ref("prompt_embeds");
      assert.equal(pos.tokens, pe.shape[1]);
      expectClose(pos.embeds, pe, { what: "prompt_embeds" });
      expectClose(neg.embeds, ref("negative_prompt_embeds"), { what: "negative_prompt_embeds" });
      expectClose(pos.pooled, ref("pooled_prompt_embeds"), { what: "pooled_prompt_embeds" });
      expectClose(neg.pooled, ref("negative_pooled_prompt_embeds"), { what: "negative_pooled_prompt_embeds" });

      // the whole run
      calls = [];
      const steps: number[] = [];
      const out = await pipe.run(
        {
          prompt: inp.prompt,
          negativePrompt: inp.negative_prompt ?? undefined,
          n: 1,
          width: inp.width,
          height: inp.height,
          steps: inp.num_inference_steps,
          guidanceScale: inp.guidance_scale,
          maxSequenceLength: inp.max_sequence_length,
          useT5: !noT5,
          seed: 1,
          initLatents: ref("init_latents").data,
        },
        { onStep: (s) => steps.push(s) },
      );
      assert.equal(calls.length, c.denoiser_calls);
      assert.equal(steps.at(-1), c.denoiser_calls);
      expectClose(calls[0].inputs.encoder_hidden_states.data as Float32Array, ref("denoiser_encoder_hidden_states"), { what: "denoiser encoder_hidden_states" });
      assert.deepEqual(calls[0].inputs.encoder_hidden_states.shape, ref("denoiser_encoder_hidden_states").shape);
      expectClose(calls[0].inputs.pooled_projections.data as Float32Array, ref("denoiser_pooled_projections"), { what: "denoiser pooled_projections" });
      expectClose(stack(calls, (k) => k.inputs.timestep.data as Float32Array), ref("steps/denoiser_t"), { atol: 0, rtol: 1e-6, what: "denoiser t" });
      expectClose(stack(calls, (k) => k.inputs.hidden_states.data as Float32Array), ref("steps/denoiser_in"), { what: "denoiser_in" });
      expectClose(stack(calls, (k) => k.output), ref("steps/denoiser_out"), { what: "denoiser_out" });

      const fl = ref("final_latents");
      assert.deepEqual(out.latentShape, fl.shape);
      const d = expectClose(out.latents, fl.data, { atol: 1e-3, rtol: 0, what: "final_latents" });
      const frac = await withinOneLevel(out.images[0], join(dir, "image.png"));
      console.log(`${name}: final_latents max abs diff ${d.toExponential(2)}, image within 1 level ${(frac * 100).toFixed(3)}%`);
      assert.ok(frac >= 0.999);
    });
  }

  test("sizes must be multiples of 16 and within the positional grid; bad max_sequence_length is rejected", async () => {
    const base = { prompt: "x", n: 1, width: 64, height: 64, steps: 1, seed: 1 };
    for (const [p, param] of [
      [{ width: 72 }, "width"],
      [{ height: 8 }, "height"],
      [{ width: 24 * 16 + 16 }, "width"],
      [{ maxSequenceLength: 0 }, "max_sequence_length"],
      [{ maxSequenceLength: 513 }, "max_sequence_length"],
    ] as const) {
      await assert.rejects(pipe.run({ ...base, ...p }), (e: unknown) => e instanceof EaselError && e.param === param, JSON.stringify(p));
    }
  });

  test("a seed reproduces the same latents; T5 on and off differ; guidance 0 makes one call per step", async () => {
    calls = [];
    const p = { prompt: "a red cube", n: 2, width: 32, height: 48, steps: 2, seed: 42, maxSequenceLength: 16 };
    const a = await pipe.run(p);
    const b = await pipe.run(p);
    assert.deepEqual(a.latents, b.latents);
    assert.equal(a.images.length, 2);
    assert.deepEqual(calls[0].inputs.encoder_hidden_states.shape, [4, 77 + 16, 48]);
    const c = await pipe.run({ ...p, useT5: false });
    assert.notDeepEqual(a.latents, c.latents);
    calls = [];
    await pipe.run({ ...p, guidanceScale: 0 });
    assert.equal(calls.length, 2);
    assert.equal(calls[0].inputs.hidden_states.shape[0], 2);
  });
});
