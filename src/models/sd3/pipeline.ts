/**
 * StableDiffusion3Pipeline (diffusers pipeline_stable_diffusion_3.py) for SD3 medium and SD3.5 large / large-turbo /
 * medium. Conditioning: both CLIPs' penultimate hidden states concatenated on the channel axis and zero-padded to
 * joint_attention_dim, then T5's last hidden state appended on the sequence axis (77 + max_sequence_length tokens;
 * without T5, 77 zero tokens as diffusers does); pooled = both CLIPs' text_embeds concatenated. The denoising run is
 * the shared one (flow-matching samplers give the transformer sigma * 1000 and need no initial noise scaling).
 */
import { freemem, totalmem } from "node:os";
import { EaselError } from "../../core/errors.ts";
import type { Warning } from "../../core/types.ts";
import { createSession, type HostTensor, type ModelSession } from "../../runtime/session.ts";
import { prepareClipTextModel } from "../components/clip-text.ts";
import { type ClipTokenizer, loadClipTokenizer } from "../text/clip-tokenizer.ts";
import { type Conditioning, runUnetDiffusion } from "../pipeline/run.ts";
import type { CheckpointLike, LoadedPipeline, PipelineParams, RuntimeOptions } from "../pipeline/family.ts";
import { prepareT5EncoderModel } from "../components/t5-encoder.ts";
import { loadT5Tokenizer, type T5Tokenizer } from "../text/t5-tokenizer.ts";
import { latentScaling, prepareVaeDecoder, prepareVaeEncoder } from "../components/vae.ts";
import { SD3_PREVIEW, sd3Defaults } from "./config.ts";
import { planSd3Memory, type Residency, type Sd3MemoryPlan, sd3MemoryInput } from "./memory.ts";
import { prepareMmditModel } from "./mmdit.ts";
import { type SessionSlot, sessionSlot } from "./session-slot.ts";

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
  encode(prompts: [string, string, string], o: Sd3EncodeOptions): Promise<Sd3PromptEmbeds>;
  /**
   * Several prompt triples, encoder by encoder: both CLIPs for every prompt, then T5 for every prompt, so an
   * on-demand encoder is opened once per call and released before the next one opens.
   */
  encodeMany(prompts: [string, string, string][], o: Sd3EncodeOptions): Promise<Sd3PromptEmbeds[]>;
  release(): Promise<void>;
}

export interface Sd3EncodeOptions {
  maxSequenceLength: number;
  useT5: boolean;
}

export type SessionFactory = (modelPath: string) => Promise<ModelSession>;

export interface Sd3TextEncoderOptions {
  /** Weight-only int8 T5 linears (about 1/4 of T5-XXL's fp32 memory; outputs within ~1.5% of fp32). */
  t5WeightQuantization?: "int8";
  /** Residency of the CLIP pair and of T5 (./memory.ts); default both resident (T5 opened on first use). */
  clipMode?: Residency;
  t5Mode?: Residency;
  /** Set when T5 does not fit in memory: a request that needs T5 fails with it. */
  t5Unavailable?: EaselError;
}

export interface Sd3LoadOptions {
  /** Weight-only int8 T5 linears; the same as RuntimeOptions.t5Quantization "int8". */
  t5WeightQuantization?: "int8";
  /** Test and debugging hook: every transformer call's inputs (CFG batch) and raw output. */
  observe?: DenoiserObserver;
  /** Opens every session (tests count opens and releases); default createSession with the runtime's provider and threads. */
  sessionFactory?: SessionFactory;
  /** Replaces the plan computed from the machine's memory (tests: force every component on demand). */
  memoryPlan?: Sd3MemoryPlan;
}

/** The three text encoders of an SD3 checkpoint; T5 is opened on first use (it is by far the largest). */
export async function loadSd3TextEncoders(
  ckpt: CheckpointLike,
  rt: RuntimeOptions,
  session: SessionFactory,
  o: Sd3TextEncoderOptions = {},
): Promise<Sd3TextEncoders> {
  const opts = { cacheDir: rt.cacheDir, executionProvider: rt.executionProvider };
  const tokenizers: ClipTokenizer[] = [loadClipTokenizer(dirOf(ckpt, "tokenizer")), loadClipTokenizer(dirOf(ckpt, "tokenizer_2"))];
  const clipMode = o.clipMode ?? "resident";
  const clips = ["text_encoder", "text_encoder_2"].map((name) => {
    const m = prepareClipTextModel(dirOf(ckpt, name), opts);
    if (!m.config.projectionDim) throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: ${name} must be a CLIPTextModelWithProjection`);
    return { slot: sessionSlot(() => session(m.modelPath), clipMode), width: m.config.hiddenSize };
  });
  const contextDim = Number(ckpt.components.transformer?.config.joint_attention_dim ?? 4096);
  const hasT5 = Boolean(ckpt.components.text_encoder_3 && ckpt.tokenizers.tokenizer_3);
  const t5Tokenizer: T5Tokenizer | undefined = hasT5 ? loadT5Tokenizer(dirOf(ckpt, "tokenizer_3")) : undefined;
  // Built (int8: quantised) on first use, then the cached path is reused by every on-demand open.
  let t5Path: string | undefined;
  const t5 = sessionSlot(async () => {
    if (!t5Path) {
      const m = prepareT5EncoderModel(dirOf(ckpt, "text_encoder_3"), {
        ...opts,
        maxSequenceLength: MAX_T5_SEQUENCE_LENGTH,
        weightQuantization: o.t5WeightQuantization,
      });
      if (m.config.dModel !== contextDim) {
        throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: T5 d_model ${m.config.dModel} differs from the transformer's joint_attention_dim ${contextDim}`);
      }
      t5Path = m.modelPath;
    }
    return session(t5Path);
  }, o.t5Mode ?? "resident");
  const clipWidth = clips[0].width + clips[1].width;
  if (clipWidth > contextDim) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: CLIP widths ${clipWidth} exceed joint_attention_dim ${contextDim}`);
  }
  if (clipMode === "resident") await Promise.all(clips.map((c) => c.slot.get()));

  async function encodeMany(prompts: [string, string, string][], eo: Sd3EncodeOptions): Promise<Sd3PromptEmbeds[]> {
    const useT5 = eo.useT5 && t5Tokenizer !== undefined;
    if (useT5 && o.t5Unavailable) throw o.t5Unavailable;
    const L = tokenizers[0].maxLength;
    // CLIP step: penultimate hidden states [1, 77, D_i] and text_embeds [1, P_i] of both encoders, every prompt.
    const hidden: Float32Array[][] = prompts.map(() => []);
    const pooled: Float32Array[][] = prompts.map(() => []);
    for (let i = 0; i < 2; i++) {
      try {
        const s = await clips[i].slot.get();
        for (const [k, triple] of prompts.entries()) {
          const ids = tokenizers[i].encodeForModel(triple[i]).ids;
          // All outputs: onnxruntime-node 1.23 keys a subset of fetched outputs by the graph's first output names.
          const out = await s.run({ input_ids: { data: BigInt64Array.from(ids, BigInt), shape: [1, ids.length] } });
          hidden[k].push(out.penultimate_hidden_state.data as Float32Array);
          pooled[k].push(out.text_embeds.data as Float32Array);
        }
      } finally {
        await clips[i].slot.done();
      }
    }
    // T5 step: last_hidden_state [1, T, J], or 77 zero tokens when T5 is off (diffusers' tokenizer_max_length).
    const t5States: (Float32Array | undefined)[] = prompts.map(() => undefined);
    let t5Tokens = L;
    if (useT5 && t5Tokenizer) {
      try {
        const s = await t5.get();
        for (const [k, triple] of prompts.entries()) {
          const ids = t5Tokenizer.encodeForModel(triple[2], eo.maxSequenceLength).ids;
          const out = await s.run({ input_ids: { data: BigInt64Array.from(ids, BigInt), shape: [1, ids.length] } }, ["last_hidden_state"]);
          t5States[k] = out.last_hidden_state.data as Float32Array;
          t5Tokens = ids.length;
        }
      } finally {
        await t5.done();
      }
    }
    const J = contextDim;
    return prompts.map((_, k) => {
      const embeds = new Float32Array((L + t5Tokens) * J); // zeros: CLIP channel padding and the T5-off part
      for (let tok = 0; tok < L; tok++) {
        let c = 0;
        for (let i = 0; i < 2; i++) {
          const w = clips[i].width;
          embeds.set(hidden[k][i].subarray(tok * w, (tok + 1) * w), tok * J + c);
          c += w;
        }
      }
      const states = t5States[k];
      if (states) embeds.set(states, L * J);
      const pooledAll = new Float32Array(pooled[k][0].length + pooled[k][1].length);
      pooledAll.set(pooled[k][0]);
      pooledAll.set(pooled[k][1], pooled[k][0].length);
      return { embeds, tokens: L + t5Tokens, pooled: pooledAll };
    });
  }

  return {
    contextDim,
    hasT5,
    encode: async (prompts, eo) => (await encodeMany([prompts], eo))[0],
    encodeMany,
    async release() {
      await Promise.all([...clips.map((c) => c.slot.release()), t5.release()]);
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

/**
 * The machine's memory plan for this checkpoint (./memory.ts) from `rt.memory` or os.totalmem() / os.freemem(),
 * at the model's default size and the longest T5 prompt.
 */
export function planSd3ForRuntime(ckpt: CheckpointLike, rt: RuntimeOptions, lo: Sd3LoadOptions = {}): Sd3MemoryPlan {
  const machine = rt.memory ?? { totalBytes: totalmem(), freeBytes: freemem() };
  const t5Quantization = lo.t5WeightQuantization ?? rt.t5Quantization ?? "none";
  const d = sd3Defaults(ckpt);
  return planSd3Memory(sd3MemoryInput(ckpt, machine, { t5Quantization, size: { width: d.width, height: d.height }, maxT5Tokens: MAX_T5_SEQUENCE_LENGTH }));
}

/** A session that is opened for each call and released after it when its slot is on demand. */
function perCallSession(slot: SessionSlot, modelPath: string, ep: ModelSession["executionProvider"]): ModelSession {
  return {
    modelPath,
    executionProvider: ep,
    inputNames: [],
    outputNames: [],
    async run(feeds, outputs) {
      try {
        return await (await slot.get()).run(feeds, outputs);
      } finally {
        await slot.done();
      }
    },
    release: () => slot.release(),
  };
}

export async function loadSd3(ckpt: CheckpointLike, rt: RuntimeOptions, lo: Sd3LoadOptions = {}): Promise<LoadedPipeline> {
  const opts = { cacheDir: rt.cacheDir, executionProvider: rt.executionProvider };
  const session: SessionFactory =
    lo.sessionFactory ?? ((path) => createSession(path, { executionProvider: rt.executionProvider, intraOpThreads: rt.intraOpThreads }));
  const plan = lo.memoryPlan ?? planSd3ForRuntime(ckpt, rt, lo);
  const t5Int8 = plan.t5 === "int8";
  const text = await loadSd3TextEncoders(ckpt, rt, session, {
    t5WeightQuantization: t5Int8 ? "int8" : undefined,
    clipMode: plan.modes.clip,
    t5Mode: plan.modes.t5,
    t5Unavailable: plan.t5Error,
  });
  const transformerModel = prepareMmditModel(dirOf(ckpt, "transformer"), opts);
  const tcfg = transformerModel.config;
  const transformer = sessionSlot(() => session(transformerModel.modelPath), plan.modes.transformer);
  const vaeDir = dirOf(ckpt, "vae");
  const decoder = prepareVaeDecoder(vaeDir, opts);
  const vaeDecoderSlot = sessionSlot(() => session(decoder.modelPath), plan.modes.vae);
  const vaeEncoderSlot = sessionSlot(() => session(prepareVaeEncoder(vaeDir, opts).modelPath), plan.modes.vae);
  const defaults = sd3Defaults(ckpt);
  if (decoder.config.latentChannels !== tcfg.inChannels) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: VAE latent channels ${decoder.config.latentChannels} differ from the transformer's in_channels ${tcfg.inChannels}`);
  }
  // Resident components open now, so a broken graph fails the load rather than the first request.
  if (transformer.mode === "resident") await transformer.get();
  if (vaeDecoderSlot.mode === "resident") await vaeDecoderSlot.get();

  // The shared run feeds `sample`; the transformer graph names it hidden_states (diffusers' argument name).
  // An on-demand transformer stays open for all steps of a request and is released before the VAE decode.
  const denoiser: ModelSession = {
    modelPath: transformerModel.modelPath,
    executionProvider: rt.executionProvider,
    inputNames: ["hidden_states", "timestep", "encoder_hidden_states", "pooled_projections"],
    outputNames: ["sample"],
    async run(feeds) {
      const inputs = {
        hidden_states: feeds.sample,
        timestep: feeds.timestep,
        encoder_hidden_states: feeds.encoder_hidden_states,
        pooled_projections: feeds.pooled_projections,
      };
      const out = await (await transformer.get()).run(inputs, ["sample"]);
      lo.observe?.(inputs, out.sample.data as Float32Array);
      return out;
    },
    release: () => transformer.release(),
  };
  const vaeDecoderPerCall = perCallSession(vaeDecoderSlot, decoder.modelPath, rt.executionProvider);
  const vaeDecoder: ModelSession = {
    ...vaeDecoderPerCall,
    async run(feeds, outputs) {
      await transformer.done();
      return vaeDecoderPerCall.run(feeds, outputs);
    },
  };
  const vaeEncoder = perCallSession(vaeEncoderSlot, "", rt.executionProvider);

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
    const triples: [string, string, string][] = [[p.prompt, p.prompt2 ?? p.prompt, p.prompt3 ?? p.prompt]];
    if (doCfg) {
      const n1 = p.negativePrompt ?? "";
      triples.push([n1, p.negativePrompt2 ?? n1, p.negativePrompt3 ?? n1]);
    }
    const [pos, neg] = await text.encodeMany(triples, eo);
    if (useT5 && t5Int8) {
      warnings.push({
        code: "W_QUANTIZED",
        message: 'T5 ran with weight-only int8 linear layers (engine.t5Quantization "int8"): the prompt conditioning differs slightly from fp32',
      });
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
      const extra: Warning[] = plan.warning ? [plan.warning] : [];
      let p = params;
      if (params.guidanceRescale) {
        extra.push({ code: "W_PARAM_IGNORED", message: "guidance_rescale is not part of the SD3 pipeline and was ignored", param: "guidance_rescale" });
        p = { ...params, guidanceRescale: 0 };
      }
      try {
        const out = await runUnetDiffusion(
          {
            unet: denoiser,
            unetOutput: "sample",
            vaeDecoder,
            vaeEncoder: async () => vaeEncoder,
            scaling: latentScaling(decoder.config),
            latentChannels: tcfg.inChannels,
            schedulerConfig: ckpt.schedulerConfig,
            defaults,
            previewFactors: SD3_PREVIEW,
            condition,
          },
          p,
          hooks,
        );
        return { ...out, warnings: [...extra, ...out.warnings] };
      } finally {
        // A cancelled or failed request leaves nothing on-demand open.
        await transformer.done();
      }
    },
    async release() {
      await Promise.all([text.release(), transformer.release(), vaeDecoderSlot.release(), vaeEncoderSlot.release()]);
    },
  };
}
