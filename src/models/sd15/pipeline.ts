/**
 * StableDiffusionPipeline (diffusers pipeline_stable_diffusion.py): one CLIP text encoder, its last hidden state as
 * the UNet context; negative prompt "" when absent; CFG batch [negative, positive].
 */
import { EaselError } from "../../core/errors.ts";
import { createSession, type ModelSession } from "../../runtime/session.ts";
import { loadClipTokenizer } from "../text/clip-tokenizer.ts";
import { prepareClipTextModel } from "../components/clip-text.ts";
import type { Conditioning } from "../pipeline/run.ts";
import { runUnetDiffusion } from "../pipeline/run.ts";
import type { CheckpointLike, LoadedPipeline, PipelineParams, RuntimeOptions } from "../pipeline/family.ts";
import { prepareUnetModel } from "../components/unet.ts";
import { latentScaling, prepareVaeDecoder, prepareVaeEncoder } from "../components/vae.ts";
import { SD15_PREVIEW, sd15Defaults } from "./config.ts";

function component(ckpt: CheckpointLike, name: string): string {
  const c = name.startsWith("tokenizer") ? ckpt.tokenizers[name] : ckpt.components[name];
  if (!c) throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: model_index.json has no ${name} component`);
  return c.dir;
}

/** Concatenates [1, L, D] rows: negatives n times, then positives n times (the CFG batch order). */
function cfgBatch(neg: Float32Array | undefined, pos: Float32Array, n: number): Float32Array {
  const rows = neg ? [...Array(n).fill(neg), ...Array(n).fill(pos)] : Array(n).fill(pos);
  const out = new Float32Array(rows.length * pos.length);
  for (const [i, r] of rows.entries()) out.set(r as Float32Array, i * pos.length);
  return out;
}

export async function loadSd15(ckpt: CheckpointLike, rt: RuntimeOptions): Promise<LoadedPipeline> {
  const opts = { cacheDir: rt.cacheDir, executionProvider: rt.executionProvider };
  const session = (path: string) => createSession(path, { executionProvider: rt.executionProvider, intraOpThreads: rt.intraOpThreads });
  const tokenizer = loadClipTokenizer(component(ckpt, "tokenizer"));
  const textEncoder = await session(prepareClipTextModel(component(ckpt, "text_encoder"), opts).modelPath);
  const unetModel = prepareUnetModel(component(ckpt, "unet"), opts);
  const unet = await session(unetModel.modelPath);
  const vaeDir = component(ckpt, "vae");
  const decoder = prepareVaeDecoder(vaeDir, opts);
  const vaeDecoder = await session(decoder.modelPath);
  let vaeEncoder: Promise<ModelSession> | undefined;
  // clip_skip needs every layer's output through the final norm: a second graph, built on first use.
  let skipEncoder: Promise<ModelSession> | undefined;
  const textEncoderDir = component(ckpt, "text_encoder");
  const defaults = sd15Defaults(ckpt);

  /** diffusers encode_prompt: last_hidden_state, or with clip_skip k final_layer_norm(hidden_states[-(k + 1)]). */
  async function encodePrompt(text: string, clipSkip: number): Promise<Float32Array> {
    const ids = tokenizer.encodeForModel(text).ids;
    const input_ids = { data: BigInt64Array.from(ids, BigInt), shape: [1, ids.length] };
    if (!clipSkip) return (await textEncoder.run({ input_ids }, ["last_hidden_state"])).last_hidden_state.data as Float32Array;
    skipEncoder ??= session(prepareClipTextModel(textEncoderDir, { ...opts, outputNormedHiddenStates: true }).modelPath);
    const all = (await (await skipEncoder).run({ input_ids }, ["normed_hidden_states"])).normed_hidden_states; // [L+1, 1, S, D]
    const per = all.data.length / all.shape[0];
    const index = all.shape[0] - 1 - clipSkip;
    return (all.data as Float32Array).slice(index * per, (index + 1) * per);
  }

  const condition = async (p: PipelineParams, n: number, doCfg: boolean): Promise<Conditioning> => {
    const clipSkip = p.clipSkip ?? 0;
    const layers = Number(ckpt.components.text_encoder?.config.num_hidden_layers ?? 12);
    if (!Number.isInteger(clipSkip) || clipSkip < 0 || clipSkip >= layers) {
      throw new EaselError("E_INPUT_INVALID", `clip_skip must be an integer in [0, ${layers - 1}], got ${clipSkip}`, { param: "clip_skip" });
    }
    const pos = await encodePrompt(p.prompt, clipSkip);
    const neg = doCfg ? await encodePrompt(p.negativePrompt ?? "", clipSkip) : undefined;
    const L = tokenizer.maxLength;
    const D = pos.length / L;
    const batch = doCfg ? 2 * n : n;
    const warnings = [];
    if (p.prompt2 !== undefined || p.prompt3 !== undefined) {
      warnings.push({ code: "W_PARAM_IGNORED", message: "this model has one text encoder: prompt_2/prompt_3 are ignored", param: "prompt_2" });
    }
    return { inputs: { encoder_hidden_states: { data: cfgBatch(neg, pos, n), shape: [batch, L, D] } }, warnings };
  };

  return {
    family: "sd15",
    defaults,
    run: (params, hooks) =>
      runUnetDiffusion(
        {
          unet,
          unetOutput: "out_sample",
          vaeDecoder,
          vaeEncoder: () => (vaeEncoder ??= session(prepareVaeEncoder(vaeDir, opts).modelPath)),
          scaling: latentScaling(decoder.config),
          latentChannels: unetModel.config.inChannels,
          schedulerConfig: ckpt.schedulerConfig,
          defaults,
          previewFactors: SD15_PREVIEW,
          condition,
        },
        params,
        hooks,
      ),
    async release() {
      await Promise.all([
        textEncoder.release(),
        unet.release(),
        vaeDecoder.release(),
        vaeEncoder?.then((s) => s.release()),
        skipEncoder?.then((s) => s.release()),
      ]);
    },
  };
}
