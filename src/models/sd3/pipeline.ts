/**
 * StableDiffusion3Pipeline (diffusers pipeline_stable_diffusion_3.py) for SD3 medium and SD3.5 large / large-turbo /
 * medium. Conditioning: both CLIPs' penultimate hidden states concatenated on the channel axis and zero-padded to
 * joint_attention_dim, then T5's last hidden state appended on the sequence axis (77 + max_sequence_length tokens;
 * without T5, 77 zero tokens as diffusers does); pooled = both CLIPs' text_embeds concatenated. The denoising run is
 * the shared one (flow-matching samplers give the transformer sigma * 1000 and need no initial noise scaling).
 */
import { EaselError } from "../../core/errors.ts";
import type { Warning } from "../../core/types.ts";
import { createSession, type HostTensor, type ModelSession } from "../../runtime/session.ts";
import { prepareClipTextModel } from "../_shared/clip-text.ts";
import { type ClipTokenizer, loadClipTokenizer } from "../_shared/clip-tokenizer.ts";
import { type Conditioning, runUnetDiffusion } from "../_shared/diffusion-run.ts";
import type { CheckpointLike, LoadedPipeline, PipelineParams, RuntimeOptions } from "../_shared/family.ts";
import { prepareT5EncoderModel } from "../_shared/t5-encoder.ts";
import { loadT5Tokenizer, type T5Tokenizer } from "../_shared/t5-tokenizer.ts";
import { latentScaling, prepareVaeDecoder, prepareVaeEncoder } from "../_shared/vae.ts";
import { SD3_PREVIEW, sd3Defaults } from "./config.ts";
import { prepareMmditModel } from "./mmdit.ts";

/** The longest T5 prompt the encoder graph is built for (T5's own model_max_length). */
export const MAX_T5_SEQUENCE_LENGTH = 512;
const DEFAULT_T5_SEQUENCE_LENGTH = 256;

function dirOf(ckpt: CheckpointLike, name: string): string {
  const c = name.startsWith("tokenizer") ? ckpt.tokenizers[name] : ckpt.components[name];
  if (!c) throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: model_index.json has no ${name} component`);
  return c.dir;
}

/** One prompt's conditioning: context [1, 77 + T, J] and pooled [1, P]. */
export interface Sd3PromptEmbeds {
  embeds: Float32Array;
  tokens: number;
  pooled: Float32Array;
}

export interface Sd3TextEncoders {
  /** Width of the joint context (joint_attention_dim). */
  readonly contextDim: number;
  /** Whether the checkpoint has T5 (text_encoder_3 + tokenizer_3). */
  readonly hasT5: boolean;
  /** encode_prompt for one prompt triple (prompt, prompt_2, prompt_3). */
  encode(prompts: [string, string, string], o: { maxSequenceLength: number; useT5: boolean }): Promise<Sd3PromptEmbeds>;
  release(): Promise<void>;
}

type SessionFactory = (modelPath: string) => Promise<ModelSession>;

export interface Sd3LoadOptions {
  /** Weight-only int8 T5 linears (about 1/4 of T5-XXL's fp32 memory; outputs within ~1.5% of fp32). */
  t5WeightQuantization?: "int8";
  /** Test and debugging hook: every transformer call's inputs (CFG batch) and raw output. */
  observe?: DenoiserObserver;
}

/** The three text encoders of an SD3 checkpoint; T5 is opened on first use (it is by far the largest). */
export async function loadSd3TextEncoders(
  ckpt: CheckpointLike,
  rt: RuntimeOptions,
  session: SessionFactory,
  o: Sd3LoadOptions = {},
): Promise<Sd3TextEncoders> {
  const opts = { cacheDir: rt.cacheDir, executionProvider: rt.executionProvider };
  const tokenizers: ClipTokenizer[] = [loadClipTokenizer(dirOf(ckpt, "tokenizer")), loadClipTokenizer(dirOf(ckpt, "tokenizer_2"))];
  const clips = await Promise.all(
    ["text_encoder", "text_encoder_2"].map(async (name) => {
      const m = prepareClipTextModel(dirOf(ckpt, name), opts);
      if (!m.config.projectionDim) throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: ${name} must be a CLIPTextModelWithProjection`);
      return { session: await session(m.modelPath), width: m.config.hiddenSize };
    }),
  );
  const contextDim = Number(ckpt.components.transformer?.config.joint_attention_dim ?? 4096);
  const hasT5 = Boolean(ckpt.components.text_encoder_3 && ckpt.tokenizers.tokenizer_3);
  const t5Tokenizer: T5Tokenizer | undefined = hasT5 ? loadT5Tokenizer(dirOf(ckpt, "tokenizer_3")) : undefined;
  let t5: Promise<ModelSession> | undefined;
  const openT5 = () => {
    t5 ??= (async () => {
      const m = prepareT5EncoderModel(dirOf(ckpt, "text_encoder_3"), {
        ...opts,
        maxSequenceLength: MAX_T5_SEQUENCE_LENGTH,
        weightQuantization: o.t5WeightQuantization,
      });
      if (m.config.dModel !== contextDim) {
        throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: T5 d_model ${m.config.dModel} differs from the transformer's joint_attention_dim ${contextDim}`);
      }
      return session(m.modelPath);
    })();
    t5.catch(() => {
      t5 = undefined;
    });
    return t5;
  };
  const clipWidth = clips[0].width + clips[1].width;
  if (clipWidth > contextDim) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: CLIP widths ${clipWidth} exceed joint_attention_dim ${contextDim}`);
  }

  async function encode(prompts: [string, string, string], o: { maxSequenceLength: number; useT5: boolean }): Promise<Sd3PromptEmbeds> {
    const L = tokenizers[0].maxLength;
    const hidden: Float32Array[] = [];
    const pooled: Float32Array[] = [];
    for (let i = 0; i < 2; i++) {
      const ids = tokenizers[i].encodeForModel(prompts[i]).ids;
      // All outputs: onnxruntime-node 1.23 keys a subset of fetched outputs by the graph's first output names.
      const out = await clips[i].session.run({ input_ids: { data: BigInt64Array.from(ids, BigInt), shape: [1, ids.length] } });
      hidden.push(out.penultimate_hidden_state.data as Float32Array); // [1, 77, D_i]
      pooled.push(out.text_embeds.data as Float32Array); // [1, P_i]
    }
    // T5 part: last_hidden_state [1, T, J], or 77 zero tokens when T5 is off (diffusers' tokenizer_max_length).
    let t5Tokens = L;
    let t5States: Float32Array | undefined;
    if (o.useT5 && t5Tokenizer) {
      const ids = t5Tokenizer.encodeForModel(prompts[2], o.maxSequenceLength).ids;
      const out = await (await openT5()).run({ input_ids: { data: BigInt64Array.from(ids, BigInt), shape: [1, ids.length] } }, ["last_hidden_state"]);
      t5States = out.last_hidden_state.data as Float32Array;
      t5Tokens = ids.length;
    }
    const J = contextDim;
    const embeds = new Float32Array((L + t5Tokens) * J); // zeros: CLIP channel padding and the T5-off part
    for (let tok = 0; tok < L; tok++) {
      let c = 0;
      for (let i = 0; i < 2; i++) {
        const w = clips[i].width;
        embeds.set(hidden[i].subarray(tok * w, (tok + 1) * w), tok * J + c);
        c += w;
      }
    }
    if (t5States) embeds.set(t5States, L * J);
    const pooledAll = new Float32Array(pooled[0].length + pooled[1].length);
    pooledAll.set(pooled[0]);
    pooledAll.set(pooled[1], pooled[0].length);
    return { embeds, tokens: L + t5Tokens, pooled: pooledAll };
  }

  return {
    contextDim,
    hasT5,
    encode,
    async release() {
      await Promise.all([...clips.map((c) => c.session.release()), t5?.then((s) => s.release())]);
    },
  };
}

// Copied from src/models/sd15/pipeline.ts#cfgBatch
/** Concatenates [1, ...] rows: negatives n times, then positives n times (the CFG batch order). */
function cfgBatch(neg: Float32Array | undefined, pos: Float32Array, n: number): Float32Array {
  const rows = neg ? [...Array(n).fill(neg), ...Array(n).fill(pos)] : Array(n).fill(pos);
  const out = new Float32Array(rows.length * pos.length);
  rows.forEach((r: Float32Array, i: number) => {
    out.set(r, i * pos.length);
  });
  return out;
}

/** Every transformer call's inputs (CFG batch) and raw output. */
export type DenoiserObserver = (inputs: Record<string, HostTensor>, output: Float32Array) => void;

export async function loadSd3(ckpt: CheckpointLike, rt: RuntimeOptions, lo: Sd3LoadOptions = {}): Promise<LoadedPipeline> {
  const opts = { cacheDir: rt.cacheDir, executionProvider: rt.executionProvider };
  const session: SessionFactory = (path) => createSession(path, { executionProvider: rt.executionProvider, intraOpThreads: rt.intraOpThreads });
  const text = await loadSd3TextEncoders(ckpt, rt, session, lo);
  const transformerModel = prepareMmditModel(dirOf(ckpt, "transformer"), opts);
  const tcfg = transformerModel.config;
  const transformer = await session(transformerModel.modelPath);
  const vaeDir = dirOf(ckpt, "vae");
  const decoder = prepareVaeDecoder(vaeDir, opts);
  const vaeDecoder = await session(decoder.modelPath);
  let vaeEncoder: Promise<ModelSession> | undefined;
  const defaults = sd3Defaults(ckpt);
  if (decoder.config.latentChannels !== tcfg.inChannels) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: VAE latent channels ${decoder.config.latentChannels} differ from the transformer's in_channels ${tcfg.inChannels}`);
  }

  // The shared run feeds `sample`; the transformer graph names it hidden_states (diffusers' argument name).
  const denoiser: ModelSession = {
    modelPath: transformer.modelPath,
    executionProvider: transformer.executionProvider,
    inputNames: transformer.inputNames,
    outputNames: transformer.outputNames,
    async run(feeds) {
      const inputs = {
        hidden_states: feeds.sample,
        timestep: feeds.timestep,
        encoder_hidden_states: feeds.encoder_hidden_states,
        pooled_projections: feeds.pooled_projections,
      };
      const out = await transformer.run(inputs, ["sample"]);
      lo.observe?.(inputs, out.sample.data as Float32Array);
      return out;
    },
    release: () => transformer.release(),
  };

  const condition = async (p: PipelineParams, n: number, doCfg: boolean): Promise<Conditioning> => {
    if (p.clipSkip) throw new EaselError("E_NOT_SUPPORTED", "clip_skip is not supported for SD3 yet", { param: "clip_skip" });
    const maxSequenceLength = p.maxSequenceLength ?? DEFAULT_T5_SEQUENCE_LENGTH;
    if (!Number.isInteger(maxSequenceLength) || maxSequenceLength < 1 || maxSequenceLength > MAX_T5_SEQUENCE_LENGTH) {
      throw new EaselError("E_INPUT_INVALID", `max_sequence_length must be an integer in [1, ${MAX_T5_SEQUENCE_LENGTH}], got ${maxSequenceLength}`, {
        param: "max_sequence_length",
      });
    }
    const warnings: Warning[] = [];
    const useT5 = text.hasT5 && !p.noT5;
    if (!text.hasT5 && (p.prompt3 !== undefined || p.negativePrompt3 !== undefined)) {
      warnings.push({ code: "W_PARAM_IGNORED", message: "this checkpoint has no T5 encoder: prompt_3 is ignored", param: "prompt_3" });
    }
    const eo = { maxSequenceLength, useT5 };
    const pos = await text.encode([p.prompt, p.prompt2 ?? p.prompt, p.prompt3 ?? p.prompt], eo);
    let neg: Sd3PromptEmbeds | undefined;
    if (doCfg) {
      const n1 = p.negativePrompt ?? "";
      neg = await text.encode([n1, p.negativePrompt2 ?? n1, p.negativePrompt3 ?? n1], eo);
    }
    const batch = doCfg ? 2 * n : n;
    return {
      inputs: {
        encoder_hidden_states: { data: cfgBatch(neg?.embeds, pos.embeds, n), shape: [batch, pos.tokens, text.contextDim] },
        pooled_projections: { data: cfgBatch(neg?.pooled, pos.pooled, n), shape: [batch, pos.pooled.length] },
      },
      warnings,
    };
  };

  return {
    family: "sd3",
    defaults,
    run: async (params, hooks) => {
      // Positions exist for latent grids up to pos_embed_max_size patches per side.
      const maxPx = tcfg.posEmbedMaxSize * tcfg.patchSize * 8;
      for (const [name, v] of [["width", params.width], ["height", params.height]] as const) {
        if (v !== undefined && v > maxPx) {
          throw new EaselError("E_INPUT_INVALID", `${name} must be at most ${maxPx} for this model, got ${v}`, { param: name });
        }
      }
      const extra: Warning[] = [];
      let p = params;
      if (params.guidanceRescale) {
        extra.push({ code: "W_PARAM_IGNORED", message: "guidance_rescale is not part of the SD3 pipeline and was ignored", param: "guidance_rescale" });
        p = { ...params, guidanceRescale: 0 };
      }
      return runUnetDiffusion(
        {
          unet: denoiser,
          unetOutput: "sample",
          vaeDecoder,
          vaeEncoder: () => (vaeEncoder ??= session(prepareVaeEncoder(vaeDir, opts).modelPath)),
          scaling: latentScaling(decoder.config),
          latentChannels: tcfg.inChannels,
          schedulerConfig: ckpt.schedulerConfig,
          defaults,
          previewFactors: SD3_PREVIEW,
          condition,
        },
        p,
        hooks,
      ).then((out) => ({ ...out, warnings: [...extra, ...out.warnings] }));
    },
    async release() {
      await Promise.all([text.release(), transformer.release(), vaeDecoder.release(), vaeEncoder?.then((s) => s.release())]);
    },
  };
}
