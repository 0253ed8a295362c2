/**
 * Which prompt each SDXL text encoder reads (diffusers 0.32 `StableDiffusionXLPipeline.encode_prompt`):
 *
 *     prompt_2 = prompt_2 or prompt
 *     zero_out_negative_prompt = negative_prompt is None and self.config.force_zeros_for_empty_prompt
 *     negative_prompt = negative_prompt or ""; negative_prompt_2 = negative_prompt_2 or negative_prompt
 *
 * The micro SDXL reference case `txt2img_dpmpp_2m_karras_64x96` has diffusers' embeddings of prompt P / prompt_2 P2
 * and negative_prompt N / negative_prompt_2 N2: CLIP-L channels of P and N, CLIP-G channels and pooled of P2 and N2.
 * Conditioning with those texts handed to the encoders in other combinations must be the matching slices.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { expectClose, readRefFloat32 } from "../../../test/helpers/tensors.ts";
import { createSession } from "../../runtime/session.ts";
import { prepareClipTextModel } from "../components/clip-text.ts";
import type { PipelineParams } from "../pipeline/family.ts";
import { loadClipTokenizer } from "../text/clip-tokenizer.ts";
import { type SdxlTextStack, sdxlConditioning } from "./pipeline.ts";

const MODEL = "test/fixtures/models/sdxl";
const CASE = "test/fixtures/generate/sdxl/txt2img_dpmpp_2m_karras_64x96";

describe("SDXL prompt_2 / negative_prompt_2 fallbacks (micro sdxl checkpoint)", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "easel-sdxl-prompt2-"));
  const rt = { executionProvider: "cpu" as const, intraOpThreads: 1, cacheDir };
  const inp = JSON.parse(readFileSync(join(CASE, "case.json"), "utf8").replace(/-?Infinity|NaN/g, "null")).inputs as Record<string, string>;
  const { prompt: P, prompt_2: P2, negative_prompt: N, negative_prompt_2: N2 } = inp;
  const ref = (n: string) => readRefFloat32(join(CASE, n)).data;
  const L = 77;
  const wL = Number(JSON.parse(readFileSync(join(MODEL, "text_encoder", "config.json"), "utf8")).hidden_size);
  const size = { width: 64, height: 96 };
  let text: SdxlTextStack;
  before(async () => {
    text = {
      tokenizer: loadClipTokenizer(join(MODEL, "tokenizer")),
      tokenizer2: loadClipTokenizer(join(MODEL, "tokenizer_2")),
      encoder: await createSession(prepareClipTextModel(join(MODEL, "text_encoder"), rt).modelPath, rt),
      encoder2: await createSession(prepareClipTextModel(join(MODEL, "text_encoder_2"), rt).modelPath, rt),
    };
  });
  after(async () => {
    await Promise.all([text?.encoder.release(), text?.encoder2.release()]);
    rmSync(cacheDir, { recursive: true, force: true });
  });

  /** [negative, positive] halves of the context and of the pooled text_embeds. */
  async function condition(forceZeros: boolean, p: Partial<PipelineParams>) {
    const c = await sdxlConditioning(text, forceZeros, { prompt: P, n: 1, seed: 1, ...p }, size, 1, true);
    const ctx = c.inputs.encoder_hidden_states.data as Float32Array;
    const pooled = c.inputs.text_embeds.data as Float32Array;
    return {
      neg: { ctx: ctx.subarray(0, ctx.length / 2), pooled: pooled.subarray(0, pooled.length / 2) },
      pos: { ctx: ctx.subarray(ctx.length / 2), pooled: pooled.subarray(pooled.length / 2) },
      warnings: c.warnings,
    };
  }

  const clipL = { [P]: ref("prompt_embeds"), [N]: ref("negative_prompt_embeds") };
  const clipG = { [P2]: ref("prompt_embeds"), [N2]: ref("negative_prompt_embeds") };
  const pooledG = { [P2]: ref("pooled_prompt_embeds"), [N2]: ref("negative_pooled_prompt_embeds") };

  /** Asserts the CLIP-L channels of `ctx` are diffusers' for `l` (when given) and the CLIP-G channels for `g`. */
  function expectParts(ctx: Float32Array, l: string | undefined, g: string | undefined, what: string) {
    const D = ctx.length / L;
    const part = (a: Float32Array, from: number, to: number) => {
      const out: number[] = [];
      for (let t = 0; t < L; t++) for (let ch = from; ch < to; ch++) out.push(a[t * D + ch]);
      return out;
    };
    if (l !== undefined) expectClose(part(ctx, 0, wL), part(clipL[l], 0, wL), { what: `${what} CLIP-L channels` });
    if (g !== undefined) expectClose(part(ctx, wL, D), part(clipG[g], wL, D), { what: `${what} CLIP-G channels` });
  }

  test("text_encoder reads prompt, text_encoder_2 prompt_2 (both ways round, negatives too)", async () => {
    for (const [l, g, nl, ng] of [
      [N, P2, P, N2],
      [P, N2, N, P2],
    ]) {
      const c = await condition(true, { prompt: l, prompt2: g, negativePrompt: nl, negativePrompt2: ng });
      expectParts(c.pos.ctx, l, g, "positive");
      expectParts(c.neg.ctx, nl, ng, "negative");
      expectClose(c.pos.pooled, pooledG[g], { what: "positive pooled (text_encoder_2)" });
      expectClose(c.neg.pooled, pooledG[ng], { what: "negative pooled (text_encoder_2)" });
    }
  });

  test("an empty prompt_2 / negative_prompt_2 falls back to the first prompt (Python's `or`)", async () => {
    const same = await condition(true, { prompt2: P, negativePrompt: N, negativePrompt2: N });
    for (const p of [{ negativePrompt: N }, { prompt2: "", negativePrompt: N, negativePrompt2: "" }]) {
      const c = await condition(true, p);
      assert.deepEqual(c.pos, same.pos, JSON.stringify(p));
      assert.deepEqual(c.neg, same.neg, JSON.stringify(p));
    }
    expectParts(same.pos.ctx, P, undefined, "positive");
    expectParts(same.neg.ctx, N, undefined, "negative");
  });

  test("force_zeros_for_empty_prompt zeroes only an absent negative_prompt; a lone negative_prompt_2 is then ignored", async () => {
    const zero = await condition(true, { negativePrompt2: N2 });
    assert.ok(zero.neg.ctx.every((v) => v === 0) && zero.neg.pooled.every((v) => v === 0));
    assert.deepEqual(
      zero.warnings.map((w) => w.param),
      ["negative_prompt_2"],
    );
    // "" is not None: encoded, and negative_prompt_2 still reaches text_encoder_2.
    const emptyNeg = await condition(true, { negativePrompt: "", negativePrompt2: N2 });
    expectParts(emptyNeg.neg.ctx, undefined, N2, "negative");
    expectClose(emptyNeg.neg.pooled, pooledG[N2], { what: "negative pooled" });
    // Without force_zeros an absent negative_prompt is "": text_encoder reads "", text_encoder_2 negative_prompt_2.
    const noForce = await condition(false, { negativePrompt2: N2 });
    assert.deepEqual(noForce.neg, emptyNeg.neg);
    const allEmpty = await condition(false, {});
    const explicit = await condition(false, { negativePrompt: "", negativePrompt2: "" });
    assert.deepEqual(allEmpty.neg, explicit.neg);
    assert.ok(allEmpty.neg.ctx.some((v) => v !== 0));
  });
});
