/**
 * StableDiffusionXLPipeline parity with diffusers 0.32 on the micro SDXL and Playground v2.5 checkpoints: token ids,
 * both encoders' penultimate states and pooled output, time ids, every UNet call of the run, the VAE decode with
 * Playground's latents_mean/std, and the whole pipeline's final latents and 8-bit image.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { withinOneLevel } from "../../../test/helpers/images.ts";
import { expectClose, readRefFloat32, readRefInts } from "../../../test/helpers/tensors.ts";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import { createSession, type ModelSession, type SessionTuning } from "../../runtime/session.ts";
import { prepareClipTextModel } from "../components/clip-text.ts";
import { sessionArgs } from "../components/component.ts";
import { prepareUnetModel } from "../components/unet.ts";
import { latentScaling, prepareVaeDecoder, prepareVaeEncoder } from "../components/vae.ts";
import { familyFor } from "../index.ts";
import type { LoadedPipeline, PipelineParams } from "../pipeline/family.ts";
import { runDiffusion, unetDenoiser } from "../pipeline/run.ts";
import { loadClipTokenizer } from "../text/clip-tokenizer.ts";
import { forceZerosForEmptyPrompt, type SdxlTextStack, sdxlConditioning } from "./pipeline.ts";

const CASES: Record<string, string[]> = {
  sdxl: ["txt2img_euler_64x64", "txt2img_dpmpp_2m_karras_64x96"],
  playground: ["txt2img_edm_dpmpp_2m_64x64", "txt2img_edm_euler_96x64"],
};

interface CaseInputs {
  prompt: string;
  negative_prompt: string | null;
  prompt_2: string | null;
  negative_prompt_2: string | null;
  num_inference_steps: number;
  guidance_scale: number;
  width: number;
  height: number;
  scheduler_name: string;
}

/** case.json is Python's json.dumps output: it may hold bare -Infinity / NaN, which JSON.parse rejects. */
function readCase(dir: string): { inputs: CaseInputs; denoiser_calls: number } {
  return JSON.parse(readFileSync(join(dir, "case.json"), "utf8").replace(/-?Infinity|NaN/g, "null"));
}

function paramsOf(inp: CaseInputs, dir: string): PipelineParams {
  return {
    prompt: inp.prompt,
    negativePrompt: inp.negative_prompt ?? undefined,
    prompt2: inp.prompt_2 ?? undefined,
    negativePrompt2: inp.negative_prompt_2 ?? undefined,
    n: 1,
    width: inp.width,
    height: inp.height,
    steps: inp.num_inference_steps,
    guidanceScale: inp.guidance_scale,
    scheduler: inp.scheduler_name.startsWith("default") ? undefined : inp.scheduler_name,
    seed: 1,
    initLatents: readRefFloat32(join(dir, "init_latents")).data,
  };
}


/** Rows [k * rowLen, (k+1) * rowLen) of a stacked reference tensor. */
function row(data: Float32Array, k: number, rowLen: number): Float32Array {
  return data.subarray(k * rowLen, (k + 1) * rowLen);
}

for (const family of ["sdxl", "playground"] as const) {
  describe(`StableDiffusionXLPipeline parity (micro ${family} checkpoint)`, () => {
    const model = `test/fixtures/models/${family}`;
    const ckpt = loadCheckpoint(model);
    const rt = { executionProvider: "cpu" as const, intraOpThreads: 1, cacheDir: mkdtempSync(join(tmpdir(), `easel-${family}-`)) };
    /** Opens a graph as the pipelines do: the runtime's settings plus the ones the prepared graph asks for. */
    const open = (path: string, tuning?: SessionTuning) => createSession(path, { ...rt, ...tuning });
    let pipe: LoadedPipeline;
    let text: SdxlTextStack;
    let unet: ModelSession;
    let vaeDecoder: ModelSession;
    before(async () => {
      pipe = await familyFor(ckpt).load(ckpt, rt);
      text = {
        tokenizer: loadClipTokenizer(join(model, "tokenizer")),
        tokenizer2: loadClipTokenizer(join(model, "tokenizer_2")),
        encoder: await createSession(prepareClipTextModel(join(model, "text_encoder"), rt).modelPath, rt),
        encoder2: await createSession(prepareClipTextModel(join(model, "text_encoder_2"), rt).modelPath, rt),
      };
      unet = await createSession(prepareUnetModel(join(model, "unet"), rt).modelPath, rt);
      vaeDecoder = await open(...sessionArgs(prepareVaeDecoder(join(model, "vae"), rt)));
    });
    after(async () => {
      await Promise.all([pipe?.release(), text?.encoder.release(), text?.encoder2.release(), unet?.release(), vaeDecoder?.release()]);
    });

    test("checkpoint detection", () => {
      assert.equal(familyFor(ckpt).id, family);
      assert.equal(forceZerosForEmptyPrompt(ckpt), true);
    });

    for (const name of CASES[family]) {
      const dir = `test/fixtures/generate/${family}/${name}`;
      const c = readCase(dir);
      const inp = c.inputs;

      test(`${name}: token ids of both tokenizers`, () => {
        for (const [tok, file, pos, neg] of [
          [text.tokenizer, "input_ids_tokenizer", inp.prompt, inp.negative_prompt],
          [text.tokenizer2, "input_ids_tokenizer_2", inp.prompt_2 || inp.prompt, inp.negative_prompt_2 || inp.negative_prompt],
        ] as const) {
          const ref = readRefInts(join(dir, file));
          const L = ref.shape[1];
          assert.deepEqual([...tok.encodeForModel(pos).ids], ref.data.slice(0, L), `${file} prompt`);
          // The reference tokenizes "" for an absent negative prompt, which the pipeline then replaces by zeros.
          if (neg !== null) assert.deepEqual([...tok.encodeForModel(neg).ids], ref.data.slice(L, 2 * L), `${file} negative`);
        }
      });

      test(`${name}: prompt embeddings, pooled embeddings and time ids`, async () => {
        const p = paramsOf(inp, dir);
        const cond = await sdxlConditioning(text, true, p, { width: inp.width, height: inp.height }, 1, true);
        const ctx = cond.inputs.encoder_hidden_states.data as Float32Array;
        const pooled = cond.inputs.text_embeds.data as Float32Array;
        const half = ctx.length / 2;
        expectClose(row(ctx, 0, half), readRefFloat32(join(dir, "negative_prompt_embeds")), { what: "negative_prompt_embeds" });
        expectClose(row(ctx, 1, half), readRefFloat32(join(dir, "prompt_embeds")), { what: "prompt_embeds" });
        expectClose(ctx, readRefFloat32(join(dir, "denoiser_encoder_hidden_states")), { what: "encoder_hidden_states" });
        expectClose(row(pooled, 0, pooled.length / 2), readRefFloat32(join(dir, "negative_pooled_prompt_embeds")), { what: "negative pooled" });
        expectClose(row(pooled, 1, pooled.length / 2), readRefFloat32(join(dir, "pooled_prompt_embeds")), { what: "pooled" });
        expectClose(pooled, readRefFloat32(join(dir, "add_text_embeds")), { what: "add_text_embeds" });
        assert.deepEqual([...(cond.inputs.time_ids.data as Float32Array)], [...readRefFloat32(join(dir, "add_time_ids")).data]);
        if (inp.negative_prompt === null) assert.ok(row(ctx, 0, half).every((v) => v === 0) && row(pooled, 0, pooled.length / 2).every((v) => v === 0));
      });

      test(`${name}: every UNet call (inputs, timestep, raw output) and the VAE decode`, async () => {
        const refIn = readRefFloat32(join(dir, "steps/denoiser_in"));
        const refOut = readRefFloat32(join(dir, "steps/denoiser_out")).data;
        const refT = readRefFloat32(join(dir, "steps/denoiser_t")).data;
        const calls = refIn.shape[0];
        const per = refIn.data.length / calls;
        // One UNet call on the reference's own inputs.
        const k = calls - 1;
        const one = await unet.run({
          sample: { data: row(refIn.data, k, per), shape: refIn.shape.slice(1) },
          timestep: { data: new Float32Array(2).fill(refT[k]), shape: [2] },
          encoder_hidden_states: readRefFloat32(join(dir, "denoiser_encoder_hidden_states")),
          text_embeds: readRefFloat32(join(dir, "add_text_embeds")),
          time_ids: readRefFloat32(join(dir, "add_time_ids")),
        });
        expectClose(one.out_sample.data as Float32Array, row(refOut, k, per), { what: `unet call ${k}` });

        // The whole loop with the UNet recorded.
        const seen: { x: Float32Array; t: number; out: Float32Array }[] = [];
        const recording: ModelSession = {
          ...unet,
          run: async (feeds, names) => {
            const out = await unet.run(feeds, names);
            seen.push({ x: feeds.sample.data as Float32Array, t: (feeds.timestep.data as Float32Array)[0], out: out.out_sample.data as Float32Array });
            return out;
          },
        };
        const decoder = prepareVaeDecoder(join(model, "vae"), rt);
        let vaeEncoder: Promise<ModelSession> | undefined;
        const result = await runDiffusion(
          {
            defaults: pipe.defaults,
            limits: pipe.limits,
            latentChannels: 4,
            scaling: latentScaling(decoder.config),
            schedulerConfig: ckpt.schedulerConfig,
            previewFactors: { weights: [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]] },
            async prepare(p, ctx) {
              const cond = await sdxlConditioning(text, true, p, ctx, ctx.n, ctx.doCfg);
              return { denoise: unetDenoiser(recording, "out_sample", cond, ctx), warnings: cond.warnings };
            },
            async encodeImage(image) {
              vaeEncoder ??= open(...sessionArgs(prepareVaeEncoder(join(model, "vae"), rt)));
              return (await (await vaeEncoder).run({ image })).moments;
            },
            decode: async (latent) => (await vaeDecoder.run({ latent }, ["sample"])).sample.data as Float32Array,
          },
          paramsOf(inp, dir),
        );
        assert.equal(seen.length, calls);
        for (let i = 0; i < calls; i++) {
          assert.ok(Math.abs(seen[i].t - refT[i]) <= 1e-6 * Math.max(1, Math.abs(refT[i])), `timestep ${i}: ${seen[i].t} vs ${refT[i]}`);
          expectClose(seen[i].x, row(refIn.data, i, per), { what: `denoiser_in ${i}` });
          expectClose(seen[i].out, row(refOut, i, per), { what: `denoiser_out ${i}` });
        }
        const finalRef = readRefFloat32(join(dir, "final_latents"));
        expectClose(result.latents, finalRef, { atol: 1e-3, rtol: 0, what: "final_latents" });

        // VAE: the pipeline's un-scaling (Playground: latents * std / sf + mean) and the decode, from the reference latents.
        const plane = finalRef.shape[2] * finalRef.shape[3];
        const vaeIn = latentScaling(decoder.config).toVaeInput(finalRef.data, 4, plane);
        expectClose(vaeIn, readRefFloat32(join(dir, "vae_input")), { what: "vae_input" });
        const decoded = await vaeDecoder.run({ latent: { data: vaeIn, shape: finalRef.shape } });
        expectClose(decoded.sample.data as Float32Array, readRefFloat32(join(dir, "decoded")), { what: "decoded" });
      });

      test(`${name}: whole pipeline, final latents and image`, async (t) => {
        const steps: number[] = [];
        const out = await pipe.run(paramsOf(inp, dir), { onStep: (s) => steps.push(s) });
        const ref = readRefFloat32(join(dir, "final_latents"));
        assert.deepEqual(out.latentShape, ref.shape);
        const diff = expectClose(out.latents, ref.data, { atol: 1e-3, rtol: 0, what: "final_latents" });
        const ok = await withinOneLevel(out.images[0], join(dir, "image.png"));
        assert.ok(ok >= 0.999, `${(ok * 100).toFixed(3)}% of 8-bit values within one level`);
        assert.equal(steps.at(-1), c.denoiser_calls);
        assert.deepEqual(out.warnings, []);
        t.diagnostic(`final_latents max abs diff ${diff.toExponential(2)}, ${(ok * 100).toFixed(2)}% of 8-bit values within 1 level`);
      });
    }

    test("an explicit empty negative prompt is encoded, not zeroed", async () => {
      const cond = await sdxlConditioning(text, true, { prompt: "a cat", negativePrompt: "", n: 1, seed: 1 }, { width: 64, height: 64 }, 1, true);
      const ctx = cond.inputs.encoder_hidden_states.data as Float32Array;
      assert.ok(row(ctx, 0, ctx.length / 2).some((v) => v !== 0));
      const zeros = await sdxlConditioning(text, true, { prompt: "a cat", n: 2, seed: 1 }, { width: 64, height: 96 }, 2, true);
      assert.deepEqual(zeros.inputs.encoder_hidden_states.shape, [4, 77, ctx.length / 2 / 77]);
      assert.deepEqual([...(zeros.inputs.time_ids.data as Float32Array)].slice(0, 6), [96, 64, 0, 0, 96, 64]);
      // Without force_zeros_for_empty_prompt an absent negative is encoded as "".
      const encoded = await sdxlConditioning(text, false, { prompt: "a cat", n: 1, seed: 1 }, { width: 64, height: 64 }, 1, true);
      assert.deepEqual(encoded.inputs.encoder_hidden_states.data, cond.inputs.encoder_hidden_states.data);
    });
  });
}
