/**
 * StableDiffusion3Pipeline (diffusers pipeline_stable_diffusion_3.py) for SD3 medium and SD3.5 large / large-turbo /
 * medium. Conditioning: both CLIPs' penultimate hidden states concatenated on the channel axis and zero-padded to
 * joint_attention_dim, then T5's last hidden state appended on the sequence axis (77 + max_sequence_length tokens;
 * without T5, 77 zero tokens as diffusers does); pooled = both CLIPs' text_embeds concatenated. The denoising run is
 * the shared one (flow-matching samplers give the transformer sigma * 1000 and need no initial noise scaling).
 */
import { EaselError } from "../../core/errors.ts";
import type { Warning } from "../../core/types.ts";
import { createSession, type HostTensor, type ModelSession, type SessionTuning } from "../../runtime/session.ts";
import { prepareClipTextModel } from "../components/clip-text.ts";
import { sessionArgs } from "../components/component.ts";
import { prepareT5EncoderModel } from "../components/t5-encoder.ts";
import { latentScaling, prepareVaeDecoder, prepareVaeEncoder } from "../components/vae.ts";
import type { Checkpoint, LoadedPipeline, PipelineParams, RuntimeOptions } from "../pipeline/family.ts";
import { machineMemory } from "../pipeline/limits.ts";
import { type Conditioning, cfgBatch, cfgInputs, type DenoiseContext, guidedDenoiser, runDiffusion } from "../pipeline/run.ts";
import { type ClipTokenizer, loadClipTokenizer } from "../text/clip-tokenizer.ts";
import { loadT5Tokenizer, type T5Tokenizer } from "../text/t5-tokenizer.ts";
import { MAX_T5_SEQUENCE_LENGTH, SD3_PREVIEW, sd3Defaults, sd3Limits } from "./config.ts";
import { planSd3Memory, type Residency, type Sd3MemoryPlan, sd3MemoryInput } from "./memory.ts";
import { prepareMmditModel } from "./mmdit.ts";
import { type SessionSlot, sessionSlot } from "./session-slot.ts";

const DEFAULT_T5_SEQUENCE_LENGTH = 256;

function dirOf(ckpt: Checkpoint, name: string): string {
  const c = name.startsWith("tokenizer") ? ckpt.tokenizers[name] : ckpt.components[name];
  if (!c) throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: model_index.json has no ${name} component`);
  return c.dir;
}

/**
 * What each text encoder reads, as diffusers' `StableDiffusion3Pipeline.encode_prompt` resolves it: the positive
 * triple (CLIP-L, CLIP-G, T5) and, with classifier-free guidance, the negative one:
 *
 *     prompt_2 = prompt_2 or prompt                      prompt_3 = prompt_3 or prompt
 *     negative_prompt = negative_prompt or ""
 *     negative_prompt_2 = negative_prompt_2 or negative_prompt
 *     negative_prompt_3 = negative_prompt_3 or negative_prompt
 *
 * Python's `or` takes an empty string as absent, so an empty prompt_2 / prompt_3 (or negative) falls back too; `||`
 * here, never `??`.
 */
export function sd3PromptTriples(
  p: Pick<PipelineParams, "prompt" | "prompt2" | "prompt3" | "negativePrompt" | "negativePrompt2" | "negativePrompt3">,
  doCfg: boolean,
): [string, string, string][] {
  const triples: [string, string, string][] = [[p.prompt, p.prompt2 || p.prompt, p.prompt3 || p.prompt]];
  if (doCfg) {
    const n1 = p.negativePrompt || "";
    triples.push([n1, p.negativePrompt2 || n1, p.negativePrompt3 || n1]);
  }
  return triples;
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

export type SessionFactory = (modelPath: string, tuning?: SessionTuning) => Promise<ModelSession>;

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
  ckpt: Checkpoint,
  rt: RuntimeOptions,
  session: SessionFactory,
  o: Sd3TextEncoderOptions = {},
): Promise<Sd3TextEncoders> {
  // LoRAs reach both CLIPs (text_encoder, text_encoder_2); none reaches T5.
  const opts = { cacheDir: rt.cacheDir, executionProvider: rt.executionProvider, loras: rt.loras };
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
        cacheDir: opts.cacheDir,
        executionProvider: opts.executionProvider,
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
          // Both CLIPs take diffusers' `tokenizer_max_length`, which is the first tokenizer's model_max_length.
          const ids = tokenizers[i].encodeForModel(triple[i], L).ids;
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

/** Every transformer call's inputs (CFG batch) and raw output. */
export type DenoiserObserver = (inputs: Record<string, HostTensor>, output: Float32Array) => void;

/**
 * The machine's memory plan for this checkpoint (./memory.ts) from `rt.memory` or os.totalmem() / os.freemem(),
 * at the model's default size and the longest T5 prompt.
 */
export function planSd3ForRuntime(ckpt: Checkpoint, rt: RuntimeOptions, lo: Sd3LoadOptions = {}): Sd3MemoryPlan {
  const machine = machineMemory(rt);
  // engine.precision "int8" takes T5 to int8 too (its linears are most of SD3's weights).
  const t5Quantization = lo.t5WeightQuantization ?? (rt.precision === "int8" ? "int8" : rt.t5Quantization) ?? "none";
  const d = sd3Defaults(ckpt);
  return planSd3Memory(sd3MemoryInput(ckpt, machine, { t5Quantization, size: { width: d.width, height: d.height }, maxT5Tokens: MAX_T5_SEQUENCE_LENGTH }));
}

export async function loadSd3(ckpt: Checkpoint, rt: RuntimeOptions, lo: Sd3LoadOptions = {}): Promise<LoadedPipeline> {
  const opts = { cacheDir: rt.cacheDir, executionProvider: rt.executionProvider };
  const session: SessionFactory =
    lo.sessionFactory ?? ((path, tuning) => createSession(path, { executionProvider: rt.executionProvider, intraOpThreads: rt.intraOpThreads, ...tuning }));
  const plan = lo.memoryPlan ?? planSd3ForRuntime(ckpt, rt, lo);
  const t5Int8 = plan.t5 === "int8";
  const text = await loadSd3TextEncoders(ckpt, rt, session, {
    t5WeightQuantization: t5Int8 ? "int8" : undefined,
    clipMode: plan.modes.clip,
    t5Mode: plan.modes.t5,
    t5Unavailable: plan.t5Error,
  });
  // A LoRA set is merged into the transformer's weights (../components/lora.ts): its graph is the usual one.
  const transformerModel = prepareMmditModel(dirOf(ckpt, "transformer"), { ...opts, loras: rt.loras });
  const tcfg = transformerModel.config;
  const transformer = sessionSlot(() => session(transformerModel.modelPath), plan.modes.transformer);
  const vaeDir = dirOf(ckpt, "vae");
  const decoder = prepareVaeDecoder(vaeDir, opts);
  const vaeDecoderSlot = sessionSlot(() => session(...sessionArgs(decoder)), plan.modes.vae);
  const vaeEncoderSlot = sessionSlot(() => session(...sessionArgs(prepareVaeEncoder(vaeDir, opts))), plan.modes.vae);
  const defaults = sd3Defaults(ckpt);
  if (decoder.config.latentChannels !== tcfg.inChannels) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: VAE latent channels ${decoder.config.latentChannels} differ from the transformer's in_channels ${tcfg.inChannels}`);
  }
  // Resident components open now, so a broken graph fails the load rather than the first request.
  if (transformer.mode === "resident") await transformer.get();
  if (vaeDecoderSlot.mode === "resident") await vaeDecoderSlot.get();

  // clip_skip, max_sequence_length's range, prompt_3 without T5 and guidance_rescale are the family's limits (core/limits.ts).
  const condition = async (p: PipelineParams, n: number, doCfg: boolean): Promise<Conditioning> => {
    const maxSequenceLength = p.maxSequenceLength ?? DEFAULT_T5_SEQUENCE_LENGTH;
    const warnings: Warning[] = [];
    const useT5 = text.hasT5 && p.useT5 !== false;
    const eo = { maxSequenceLength, useT5 };
    const [pos, neg] = await text.encodeMany(sd3PromptTriples(p, doCfg), eo);
    if (useT5 && t5Int8) {
      warnings.push({
        code: "W_QUANTIZED",
        message: 'T5 ran with weight-only int8 linear layers (engine.t5Quantization or engine.precision "int8"): the prompt conditioning differs slightly from fp32',
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

  const limits = sd3Limits(ckpt);
  const C = tcfg.inChannels;

  /** The transformer on the CFG batch (latents named hidden_states, as diffusers' argument), guidance applied. */
  const transformerDenoiser = (cond: Conditioning, ctx: DenoiseContext) => {
    const [, , h, w] = ctx.shape;
    const contextFor = cfgInputs(cond.inputs);
    return guidedDenoiser(ctx, async (x, t, batch, rows) => {
      const { encoder_hidden_states, pooled_projections } = contextFor(rows);
      const inputs = {
        hidden_states: { data: x, shape: [batch, C, h, w] },
        timestep: { data: new Float32Array(batch).fill(t), shape: [batch] },
        encoder_hidden_states,
        pooled_projections,
      };
      const out = (await (await transformer.get()).run(inputs, ["sample"])).sample.data as Float32Array;
      lo.observe?.(inputs, out);
      return out;
    });
  };

  /** Runs a component held in a slot: an on-demand one is opened for the call and released after it. */
  const inSlot = async <T>(slot: SessionSlot, f: (s: ModelSession) => Promise<T>): Promise<T> => {
    try {
      return await f(await slot.get());
    } finally {
      await slot.done();
    }
  };

  return {
    family: "sd3",
    defaults,
    limits,
    run: async (params, hooks) => {
      try {
        const out = await runDiffusion(
          {
            defaults,
            limits,
            latentChannels: tcfg.inChannels,
            scaling: latentScaling(decoder.config),
            schedulerConfig: ckpt.schedulerConfig,
            previewFactors: SD3_PREVIEW,
            async prepare(p, ctx) {
              const cond = await condition(p, ctx.n, ctx.doCfg);
              // An on-demand transformer stays open for all steps of a request and is released before the VAE decode.
              return { denoise: transformerDenoiser(cond, ctx), warnings: cond.warnings, done: () => transformer.done() };
            },
            encodeImage: (image) => inSlot(vaeEncoderSlot, async (s) => (await s.run({ image })).moments),
            decode: (latent) => inSlot(vaeDecoderSlot, async (s) => (await s.run({ latent }, ["sample"])).sample.data as Float32Array),
          },
          params,
          hooks,
        );
        return { ...out, warnings: plan.warning ? [plan.warning, ...out.warnings] : out.warnings };
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
