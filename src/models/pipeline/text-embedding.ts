/**
 * Pooled CLIP text embeddings of a checkpoint's first text encoder (`tokenizer` + `text_encoder`): for each text, the
 * projected `text_embeds` where the encoder has a projection, else `pooler_output` (the end-of-text token after the
 * final layer norm), which is what CLIP compares texts with. Used for the semantic part of prompt rejection
 * (src/prompts/rejection.ts); the prompt never reaches the denoiser this way.
 */
import { EaselError } from "../../core/errors.ts";
import { createSession, type ModelSession } from "../../runtime/session.ts";
import { prepareClipTextModel } from "../components/clip-text.ts";
import { loadClipTokenizer } from "../text/clip-tokenizer.ts";
import type { Checkpoint, RuntimeOptions } from "./family.ts";

export interface TextEmbedder {
  embed(texts: string[]): Promise<Float32Array[]>;
  release(): Promise<void>;
}

export async function loadTextEmbedder(ckpt: Checkpoint, rt: RuntimeOptions): Promise<TextEmbedder> {
  const encoder = ckpt.components.text_encoder;
  const tokenizer = ckpt.tokenizers.tokenizer;
  if (!encoder || !tokenizer) {
    throw new EaselError("E_NOT_SUPPORTED", `${ckpt.dir}: no CLIP text encoder (text_encoder + tokenizer) to compare prompts with`);
  }
  const tok = loadClipTokenizer(tokenizer.dir);
  const model = prepareClipTextModel(encoder.dir, { cacheDir: rt.cacheDir, executionProvider: rt.executionProvider });
  const session: ModelSession = await createSession(model.modelPath, { executionProvider: rt.executionProvider, intraOpThreads: rt.intraOpThreads });
  const pooled = session.outputNames.includes("text_embeds") ? "text_embeds" : "pooler_output";
  return {
    async embed(texts) {
      if (texts.length === 0) return [];
      const { ids } = tok.encodeBatch(texts);
      const L = ids.length / texts.length;
      const out = (await session.run({ input_ids: { data: BigInt64Array.from(ids, (x) => BigInt(x)), shape: [texts.length, L] } }, [pooled]))[pooled];
      const D = out.shape[1];
      const data = out.data as Float32Array;
      return texts.map((_, i) => data.slice(i * D, (i + 1) * D));
    },
    release: () => session.release(),
  };
}
