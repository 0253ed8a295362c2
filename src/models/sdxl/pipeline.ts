
import { EaselError } from "../../core/errors.ts";
import type { ModelLimits } from "../../core/limits.ts";
import type { Warning } from "../../core/types.ts";
import type { WeightVariant } from "../../graph/safetensors.ts";
import { createSession, type ModelSession, type SessionTuning } from "../../runtime/session.ts";
import { prepareClipTextModel } from "../components/clip-text.ts";
import { precisionWarnings, sessionArgs } from "../components/component.ts";
import { prepareUnetModel } from "../components/unet.ts";
import { latentScaling, prepareVaeDecoder, prepareVaeEncoder } from "../components/vae.ts";
import type { Checkpoint, LoadedPipeline, ModelDefaults, PipelineParams, RuntimeOptions } from "../pipeline/family.ts";
import type { LatentRgbFactors } from "../pipeline/latent-preview.ts";
import { type Conditioning, runDiffusion, unetChannels, unetDenoiser } from "../pipeline/run.ts";
import { type ClipTokenizer, loadClipTokenizer } from "../text/clip-tokenizer.ts";
import { SDXL_PREVIEW, sdxlDefaults, sdxlLimits } from "./config.ts";
import { PLAYGROUND_PREVIEW, playgroundDefaults } from "./playground.ts";

function componentDir(ckpt: Checkpoint, name: string): string {
  const dir = ckpt.components[name]?.dir ?? ckpt.tokenizers[name]?.dir;
  if (dir) return dir;
  throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: the ${ckpt.pipelineClass} checkpoint has no ${name} component`, {
    details: { component: name },
  });
}

/** The weight variant the checkpoint reader chose for a component, so graphs read the same files. */
function variantOf(ckpt: Checkpoint, name: string): WeightVariant | undefined {
  return ckpt.components[name]?.variant;
}

/** model_index.json's `force_zeros_for_empty_prompt` (the pipeline's registered default is true). */
export function forceZerosForEmptyPrompt(ckpt: Checkpoint): boolean {
  return ckpt.modelIndex.force_zeros_for_empty_prompt !== false;
}

/** `[orig_h, orig_w, crop_top, crop_left, target_h, target_w]` with the pipeline's defaults (no crop, original = target). */
export function sdxlTimeIds(height: number, width: number): Float32Array {
  return Float32Array.of(height, width, 0, 0, height, width);
}

/** One prompt pair through both encoders. */
export interface SdxlPromptEmbeds {
  /** [L, D1 + D2]: per token, CLIP-L's penultimate state then bigG's. */
  embeds: Float32Array;
  /** [P]: text_encoder_2's projected pooled output. */
  pooled: Float32Array;
  /** Prompt tokens dropped by truncation, per encoder. */
  truncated: [number, number];
}

export interface SdxlTextStack {
  tokenizer: ClipTokenizer;
  tokenizer2: ClipTokenizer;
  encoder: ModelSession;
  encoder2: ModelSession;
}

async function penultimate(tok: ClipTokenizer, enc: ModelSession, text: string) {
  const e = tok.encodeForModel(text);
  // All outputs are fetched: onnxruntime-node 1.23 labels a fetch subset in the graph's output order, not the
  // requested one, and the extra outputs cost one LayerNorm and one MatMul.
  const out = await enc.run({ input_ids: { data: BigInt64Array.from(e.ids, BigInt), shape: [1, e.ids.length] } });
  const h = out.penultimate_hidden_state;
  return { hidden: h.data as Float32Array, dim: h.shape[2], len: h.shape[1], pooled: out.text_embeds?.data as Float32Array | undefined, truncated: e.truncatedTokens };
}

/** diffusers `encode_prompt` for one prompt (`prompt` to text_encoder, `prompt2` to text_encoder_2). */
export async function encodeSdxlPrompt(s: SdxlTextStack, prompt: string, prompt2: string): Promise<SdxlPromptEmbeds> {
  const a = await penultimate(s.tokenizer, s.encoder, prompt);
  const b = await penultimate(s.tokenizer2, s.encoder2, prompt2);
  if (!b.pooled) throw new EaselError("E_CHECKPOINT_INVALID", "text_encoder_2 must be a CLIPTextModelWithProjection (its text_embeds are the pooled input)");
  if (a.len !== b.len) throw new EaselError("E_CHECKPOINT_INVALID", `the tokenizers give ${a.len} and ${b.len} tokens; SDXL needs equal lengths`);
  const D = a.dim + b.dim;
  const embeds = new Float32Array(a.len * D);
  for (let t = 0; t < a.len; t++) {
    embeds.set(a.hidden.subarray(t * a.dim, (t + 1) * a.dim), t * D);
    embeds.set(b.hidden.subarray(t * b.dim, (t + 1) * b.dim), t * D + a.dim);
  }
  return { embeds, pooled: b.pooled, truncated: [a.truncated, b.truncated] };
}

/** Rows laid out as the CFG batch: negatives n times, then positives n times (positives only without CFG). */
function cfgRows(neg: Float32Array | undefined, pos: Float32Array, n: number): Float32Array {
  const rows = neg ? [...Array<Float32Array>(n).fill(neg), ...Array<Float32Array>(n).fill(pos)] : Array<Float32Array>(n).fill(pos);
  const out = new Float32Array(rows.length * pos.length);
  for (const [i, r] of rows.entries()) out.set(r, i * pos.length);
  return out;
}

/** The conditioning the UNet gets: encoder_hidden_states [B, L, 2048], text_embeds [B, 1280], time_ids [B, 6]. */
export async function sdxlConditioning(
  s: SdxlTextStack,
  forceZeros: boolean,
  p: PipelineParams,
  size: { width: number; height: number },
  n: number,
  doCfg: boolean,
): Promise<Conditioning> {
  // clip_skip (not accepted) and prompt_3 (ignored) are the family's limits (core/limits.ts).
  const warnings: Warning[] = [];
  // Python's `prompt_2 or prompt`: an empty prompt_2 also falls back.
  const pos = await encodeSdxlPrompt(s, p.prompt, p.prompt2 || p.prompt);
  if (pos.truncated.some((k) => k > 0)) {
    warnings.push({ code: "W_PROMPT_TRUNCATED", message: `the prompt is longer than ${s.tokenizer.maxLength} tokens; the end was dropped`, param: "prompt" });
  }
  let neg: SdxlPromptEmbeds | undefined;
  if (doCfg) {
    if (p.negativePrompt === undefined && forceZeros) {
      // force_zeros_for_empty_prompt: no encoder call, and a lone negative_prompt_2 is ignored as diffusers ignores it.
      neg = { embeds: new Float32Array(pos.embeds.length), pooled: new Float32Array(pos.pooled.length), truncated: [0, 0] };
      if (p.negativePrompt2) {
        warnings.push({ code: "W_PARAM_IGNORED", message: "negative_prompt_2 is ignored without negative_prompt", param: "negative_prompt_2" });
      }
    } else {
      const negative = p.negativePrompt || "";
      neg = await encodeSdxlPrompt(s, negative, p.negativePrompt2 || negative);
    }
  } else if (p.negativePrompt !== undefined || p.negativePrompt2 !== undefined) {
    warnings.push({ code: "W_PARAM_IGNORED", message: "guidance_scale <= 1 disables classifier-free guidance: the negative prompt is unused", param: "negative_prompt" });
  }
  const L = s.tokenizer.maxLength;
  const D = pos.embeds.length / L;
  const P = pos.pooled.length;
  const batch = doCfg ? 2 * n : n;
  const ids = sdxlTimeIds(size.height, size.width);
  return {
    inputs: {
      encoder_hidden_states: { data: cfgRows(neg?.embeds, pos.embeds, n), shape: [batch, L, D] },
      text_embeds: { data: cfgRows(neg?.pooled, pos.pooled, n), shape: [batch, P] },
      time_ids: { data: cfgRows(doCfg ? ids : undefined, ids, n), shape: [batch, 6] },
    },
    warnings,
  };
}

export interface SdxlPipelineSpec {
  family: string;
  defaults: ModelDefaults;
  limits: ModelLimits;
  previewFactors: LatentRgbFactors;
}

/**
 * Builds (or finds in the cache) each component's graph and opens its session one component at a time: a graph
 * references the checkpoint's tensors in place, so only the session holds the weights in memory.
 */
export async function loadSdxlPipeline(ckpt: Checkpoint, rt: RuntimeOptions, spec: SdxlPipelineSpec): Promise<LoadedPipeline> {
  const opts = (name: string) => ({ cacheDir: rt.cacheDir, executionProvider: rt.executionProvider, variant: variantOf(ckpt, name), loras: rt.loras });
  const session = (path: string, tuning?: SessionTuning) =>
    createSession(path, { executionProvider: rt.executionProvider, intraOpThreads: rt.intraOpThreads, ...tuning });
  const opened: ModelSession[] = [];
  const open = async (path: string, tuning?: SessionTuning) => {
    const s = await session(path, tuning);
    opened.push(s);
    return s;
  };
  let vaeEncoder: Promise<ModelSession> | undefined;
  try {
    // The UNet first, while nothing else is resident: building its graph and creating its session pass through
    // temporaries (1.6 GiB of freed pages on SDXL's, before they are trimmed) that would otherwise stack on the text
    // encoders' 3.3 GiB. Measured on a first start at 1024² (bench e2e): the load peaked at 16.1 GiB text encoders first.
    const unetModel = prepareUnetModel(componentDir(ckpt, "unet"), { ...opts("unet"), precision: rt.precision });
    const quantized = precisionWarnings(unetModel, "UNet");
    if (!unetModel.config.textTime) {
      throw new EaselError("E_CHECKPOINT_INVALID", `${componentDir(ckpt, "unet")}: an SDXL UNet needs addition_embed_type "text_time"`);
    }
    const unet = await open(unetModel.modelPath);
    const text: SdxlTextStack = {
      tokenizer: loadClipTokenizer(componentDir(ckpt, "tokenizer")),
      tokenizer2: loadClipTokenizer(componentDir(ckpt, "tokenizer_2")),
      encoder: await open(prepareClipTextModel(componentDir(ckpt, "text_encoder"), opts("text_encoder")).modelPath),
      encoder2: await open(prepareClipTextModel(componentDir(ckpt, "text_encoder_2"), opts("text_encoder_2")).modelPath),
    };
    const vaeDir = componentDir(ckpt, "vae");
    const decoder = prepareVaeDecoder(vaeDir, opts("vae"));
    const vaeDecoder = await open(...sessionArgs(decoder));
    const forceZeros = forceZerosForEmptyPrompt(ckpt);
    const scaling = latentScaling(decoder.config);

    return {
      family: spec.family,
      defaults: spec.defaults,
      limits: spec.limits,
      run: (params, hooks) =>
        runDiffusion(
          {
            defaults: spec.defaults,
            limits: spec.limits,
            ...unetChannels(unetModel.config),
            scaling,
            schedulerConfig: ckpt.schedulerConfig,
            previewFactors: spec.previewFactors,
            async prepare(p, ctx) {
              const cond = await sdxlConditioning(text, forceZeros, p, ctx, ctx.n, ctx.doCfg);
              return { denoise: unetDenoiser(unet, "out_sample", cond, ctx), warnings: [...cond.warnings, ...quantized] };
            },
            async encodeImage(image) {
              vaeEncoder ??= session(...sessionArgs(prepareVaeEncoder(vaeDir, opts("vae"))));
              return (await (await vaeEncoder).run({ image })).moments;
            },
            decode: async (latent) => (await vaeDecoder.run({ latent }, ["sample"])).sample.data as Float32Array,
          },
          params,
          hooks,
        ),
      async release() {
        await Promise.all([...opened.map((s) => s.release()), vaeEncoder?.then((s) => s.release())]);
      },
    };
  } catch (e) {
    await Promise.all(opened.map((s) => s.release()));
    throw e;
  }
}

/** SDXL / SDXL-Turbo: this pipeline with the family's defaults and previews. */
export function loadSdxl(ckpt: Checkpoint, rt: RuntimeOptions): Promise<LoadedPipeline> {
  return loadSdxlPipeline(ckpt, rt, { family: "sdxl", defaults: sdxlDefaults(ckpt), limits: sdxlLimits(ckpt, rt), previewFactors: SDXL_PREVIEW });
}

/** Playground v2.5: this pipeline; EDM sampling and latent statistics come from its configs. */
export function loadPlayground(ckpt: Checkpoint, rt: RuntimeOptions): Promise<LoadedPipeline> {
  return loadSdxlPipeline(ckpt, rt, { family: "playground", defaults: playgroundDefaults(ckpt), limits: sdxlLimits(ckpt, rt), previewFactors: PLAYGROUND_PREVIEW });
}
