/**
 * StableDiffusionPipeline (diffusers pipeline_stable_diffusion.py): one CLIP text encoder, its last hidden state as
 * the UNet context; negative prompt "" when absent; CFG batch [negative, positive].
 */
import { EaselError } from "../../core/errors.ts";
import { createSession, type ModelSession, type SessionTuning } from "../../runtime/session.ts";
import { prepareClipTextModel } from "../components/clip-text.ts";
import { precisionWarnings, sessionArgs } from "../components/component.ts";
import { prepareUnetModel } from "../components/unet.ts";
import { latentScaling, prepareVaeDecoder, prepareVaeEncoder } from "../components/vae.ts";
import type { Checkpoint, LoadedPipeline, RuntimeOptions } from "../pipeline/family.ts";
import { cfgBatch, runDiffusion, unetChannels, unetDenoiser } from "../pipeline/run.ts";
import { loadClipTokenizer } from "../text/clip-tokenizer.ts";
import { SD15_PREVIEW, sd15Defaults, sd15Limits } from "./config.ts";

function component(ckpt: Checkpoint, name: string): string {
  const c = name.startsWith("tokenizer") ? ckpt.tokenizers[name] : ckpt.components[name];
  if (!c) throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}: model_index.json has no ${name} component`);
  return c.dir;
}

export async function loadSd15(ckpt: Checkpoint, rt: RuntimeOptions): Promise<LoadedPipeline> {
  const opts = { cacheDir: rt.cacheDir, executionProvider: rt.executionProvider, loras: rt.loras };
  const session = (path: string, tuning?: SessionTuning) =>
    createSession(path, { executionProvider: rt.executionProvider, intraOpThreads: rt.intraOpThreads, ...tuning });
  const tokenizer = loadClipTokenizer(component(ckpt, "tokenizer"));
  const textEncoder = await session(prepareClipTextModel(component(ckpt, "text_encoder"), opts).modelPath);
  const unetModel = prepareUnetModel(component(ckpt, "unet"), { ...opts, precision: rt.precision });
  const quantized = precisionWarnings(unetModel, "UNet");
  const unet = await session(unetModel.modelPath);
  const vaeDir = component(ckpt, "vae");
  const decoder = prepareVaeDecoder(vaeDir, opts);
  const vaeDecoder = await session(...sessionArgs(decoder));
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

  const limits = sd15Limits(ckpt, rt);
  const scaling = latentScaling(decoder.config);

  return {
    family: "sd15",
    defaults,
    limits,
    run: (params, hooks) =>
      runDiffusion(
        {
          defaults,
          limits,
          ...unetChannels(unetModel.config),
          scaling,
          schedulerConfig: ckpt.schedulerConfig,
          previewFactors: SD15_PREVIEW,
          async prepare(p, ctx) {
            const clipSkip = p.clipSkip ?? 0;
            const pos = await encodePrompt(p.prompt, clipSkip);
            const neg = ctx.doCfg ? await encodePrompt(p.negativePrompt ?? "", clipSkip) : undefined;
            const L = tokenizer.maxLength;
            const D = pos.length / L;
            const batch = ctx.doCfg ? 2 * ctx.n : ctx.n;
            const cond = { inputs: { encoder_hidden_states: { data: cfgBatch(neg, pos, ctx.n), shape: [batch, L, D] } }, warnings: [] };
            return { denoise: unetDenoiser(unet, "out_sample", cond, ctx), warnings: quantized };
          },
          async encodeImage(image) {
            vaeEncoder ??= session(...sessionArgs(prepareVaeEncoder(vaeDir, opts)));
            return (await (await vaeEncoder).run({ image })).moments;
          },
          decode: async (latent) => (await vaeDecoder.run({ latent }, ["sample"])).sample.data as Float32Array,
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
