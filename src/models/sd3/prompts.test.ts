/**
 * Which prompt each SD3 text encoder reads (diffusers `StableDiffusion3Pipeline.encode_prompt`): CLIP-L `prompt`,
 * CLIP-G `prompt_2 or prompt`, T5 `prompt_3 or prompt`; negatives `negative_prompt or ""`, then
 * `negative_prompt_2 or negative_prompt`, `negative_prompt_3 or negative_prompt`. Python's `or` takes "" as absent.
 *
 * The micro sd3 reference case (`generate/sd3/txt2img_flow_euler_64x64`) holds diffusers' embeddings of its prompt
 * and of its negative prompt; runs that hand those two texts to the encoders in other combinations must feed the
 * transformer exactly the matching slices of them (CLIP-L channels, CLIP-G channels, T5 tokens, pooled halves).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { expectClose, readRefFloat32 } from "../../../test/helpers/tensors.ts";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import type { HostTensor } from "../../runtime/session.ts";
import type { LoadedPipeline, PipelineParams, RuntimeOptions } from "../pipeline/family.ts";
import { loadSd3, sd3PromptTriples } from "./pipeline.ts";

const MODEL = "test/fixtures/models/sd3";
const CASE = "test/fixtures/generate/sd3/txt2img_flow_euler_64x64";

describe("sd3PromptTriples: encode_prompt's fallbacks", () => {
  const cases: [Partial<PipelineParams>, [string, string, string][]][] = [
    [{}, [["a", "a", "a"], ["", "", ""]]],
    [{ prompt2: "b", prompt3: "c" }, [["a", "b", "c"], ["", "", ""]]],
    // `prompt_2 or prompt`: an empty prompt_2 / prompt_3 is absent, not an empty prompt.
    [{ prompt2: "", prompt3: "" }, [["a", "a", "a"], ["", "", ""]]],
    [{ prompt2: "", prompt3: "c" }, [["a", "a", "c"], ["", "", ""]]],
    [{ negativePrompt: "n" }, [["a", "a", "a"], ["n", "n", "n"]]],
    [{ negativePrompt: "n", negativePrompt2: "", negativePrompt3: "" }, [["a", "a", "a"], ["n", "n", "n"]]],
    [{ negativePrompt: "n", negativePrompt2: "m", negativePrompt3: "o" }, [["a", "a", "a"], ["n", "m", "o"]]],
    // `negative_prompt or ""` first, so lone second / third negatives go to their own encoder only.
    [{ negativePrompt2: "m" }, [["a", "a", "a"], ["", "m", ""]]],
    [{ negativePrompt: "", negativePrompt3: "o" }, [["a", "a", "a"], ["", "", "o"]]],
  ];
  for (const [extra, expected] of cases) {
    test(JSON.stringify(extra), () => {
      assert.deepEqual(sd3PromptTriples({ prompt: "a", ...extra }, true), expected);
      assert.deepEqual(sd3PromptTriples({ prompt: "a", ...extra }, false), expected.slice(0, 1));
    });
  }
});

describe("SD3 conditioning with distinct and empty prompt_2 / prompt_3 (micro sd3 checkpoint)", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "easel-sd3-prompts-"));
  const rt: RuntimeOptions = { executionProvider: "cpu", intraOpThreads: 1, cacheDir };
  const c = JSON.parse(readFileSync(join(CASE, "case.json"), "utf8").replace(/-?Infinity|NaN/g, "null"));
  const inp = c.inputs as { prompt: string; negative_prompt: string; width: number; height: number; num_inference_steps: number; guidance_scale: number; max_sequence_length: number };
  const ref = (n: string) => readRefFloat32(join(CASE, n));
  const P = inp.prompt;
  const N = inp.negative_prompt;
  // diffusers' encode_prompt of P and of N: [1, 77 + 256, J] contexts and [1, P_L + P_G] pooled.
  const embeds = { [P]: ref("prompt_embeds").data, [N]: ref("negative_prompt_embeds").data };
  const pooled = { [P]: ref("pooled_prompt_embeds").data, [N]: ref("negative_pooled_prompt_embeds").data };
  const ckpt = loadCheckpoint(MODEL);
  const J = Number(ckpt.components.transformer?.config.joint_attention_dim);
  const wL = Number(ckpt.components.text_encoder?.config.hidden_size);
  const wG = Number(ckpt.components.text_encoder_2?.config.hidden_size);
  const pL = Number(ckpt.components.text_encoder?.config.projection_dim);
  const L = 77;

  /** The context and pooled vector diffusers gives when CLIP-L reads `l`, CLIP-G `g` and T5 `t5` (each P or N). */
  function composed(l: string, g: string, t5: string): { ctx: Float32Array; pooled: Float32Array } {
    const ctx = new Float32Array(embeds[P].length);
    for (let tok = 0; tok < ctx.length / J; tok++) {
      for (let ch = 0; ch < J; ch++) {
        const i = tok * J + ch;
        if (tok >= L) ctx[i] = embeds[t5][i];
        else if (ch < wL) ctx[i] = embeds[l][i];
        else if (ch < wL + wG) ctx[i] = embeds[g][i];
        else assert.equal(embeds[l][i], 0); // the zero padding up to joint_attention_dim
      }
    }
    const pool = new Float32Array(pooled[P].length);
    pool.set(pooled[l].subarray(0, pL));
    pool.set(pooled[g].subarray(pL), pL);
    return { ctx, pooled: pool };
  }

  let pipe: LoadedPipeline;
  let calls: Record<string, HostTensor>[] = [];
  before(async () => {
    pipe = await loadSd3(ckpt, rt, { observe: (inputs) => calls.push(inputs) });
  });
  after(async () => {
    await pipe?.release();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  const base = {
    n: 1,
    width: inp.width,
    height: inp.height,
    guidanceScale: inp.guidance_scale,
    maxSequenceLength: inp.max_sequence_length,
    seed: 1,
  };

  // Three assignments of the two texts to (CLIP-L, CLIP-G, T5): any two encoders swapped changes one of them.
  for (const [l, g, t5] of [
    [N, P, N],
    [N, N, P],
    [P, N, N],
  ]) {
    const other = (s: string) => (s === P ? N : P);
    test(`CLIP-L reads prompt, CLIP-G prompt_2, T5 prompt_3 (${[l, g, t5].map((s) => (s === P ? "P" : "N")).join(", ")}; negatives the other text)`, async () => {
      calls = [];
      await pipe.run({
        ...base,
        steps: 1,
        prompt: l,
        prompt2: g,
        prompt3: t5,
        negativePrompt: other(l),
        negativePrompt2: other(g),
        negativePrompt3: other(t5),
        initLatents: ref("init_latents").data,
      });
      const ctx = calls[0].encoder_hidden_states;
      const pool = calls[0].pooled_projections;
      assert.deepEqual(ctx.shape, [2, L + inp.max_sequence_length, J]);
      const pos = composed(l, g, t5);
      const neg = composed(other(l), other(g), other(t5));
      const half = ctx.shape[1] * J;
      const data = ctx.data as Float32Array;
      expectClose(data.subarray(0, half), neg.ctx, { what: "negative encoder_hidden_states" });
      expectClose(data.subarray(half), pos.ctx, { what: "positive encoder_hidden_states" });
      const pd = pool.data as Float32Array;
      expectClose(pd.subarray(0, pd.length / 2), neg.pooled, { what: "negative pooled_projections" });
      expectClose(pd.subarray(pd.length / 2), pos.pooled, { what: "positive pooled_projections" });
    });
  }

  test('empty prompt_2 / prompt_3 and negatives fall back as in diffusers: the reference run ("" is None there) within 1e-3', async () => {
    calls = [];
    const out = await pipe.run({
      ...base,
      steps: inp.num_inference_steps,
      prompt: P,
      prompt2: "",
      prompt3: "",
      negativePrompt: N,
      negativePrompt2: "",
      negativePrompt3: "",
      initLatents: ref("init_latents").data,
    });
    expectClose(calls[0].encoder_hidden_states.data as Float32Array, ref("denoiser_encoder_hidden_states"), { what: "denoiser encoder_hidden_states" });
    expectClose(calls[0].pooled_projections.data as Float32Array, ref("denoiser_pooled_projections"), { what: "denoiser pooled_projections" });
    expectClose(out.latents, ref("final_latents").data, { atol: 1e-3, rtol: 0, what: "final_latents" });
  });

  test("a lone negative_prompt_2 / negative_prompt_3 reaches only its encoder; the others encode the empty prompt", async () => {
    const run = async (p: Partial<PipelineParams>) => {
      calls = [];
      await pipe.run({ ...base, steps: 1, prompt: P, ...p, initLatents: ref("init_latents").data });
      const d = calls[0].encoder_hidden_states.data as Float32Array;
      return { ctx: d.subarray(0, d.length / 2), pooled: (calls[0].pooled_projections.data as Float32Array).subarray(0, 40) };
    };
    const empty = await run({});
    const g = await run({ negativePrompt2: N });
    const t5 = await run({ negativePrompt: "", negativePrompt3: N });
    for (let tok = 0; tok < empty.ctx.length / J; tok++) {
      for (let ch = 0; ch < J; ch++) {
        const i = tok * J + ch;
        const inG = tok < L && ch >= wL && ch < wL + wG;
        // CLIP-G channels carry N's CLIP-G states; everything else is the "" encoding.
        assert.ok(Math.abs(g.ctx[i] - (inG ? embeds[N][i] : empty.ctx[i])) <= 1e-4, `negative_prompt_2 only: token ${tok} channel ${ch}`);
        assert.ok(Math.abs(t5.ctx[i] - (tok >= L ? embeds[N][i] : empty.ctx[i])) <= 1e-4, `negative_prompt_3 only: token ${tok} channel ${ch}`);
      }
    }
    expectClose(g.pooled.subarray(0, pL), empty.pooled.subarray(0, pL), { what: "CLIP-L pooled of the empty negative" });
    expectClose(g.pooled.subarray(pL), pooled[N].subarray(pL), { what: "CLIP-G pooled of negative_prompt_2" });
    assert.deepEqual(t5.pooled, empty.pooled);
  });
});
