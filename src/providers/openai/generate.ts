/**
 * Reading an OpenAI Images answer: `{data: [{b64_json | url, seed?}]}`, or, for `stream: true`, Server-Sent Events
 * whose `image_generation.partial_image` frames are passed on as previews while `image_generation.completed` events
 * carry the images. An Easel upstream adds each image's seed (`data[i].seed`, `seed` on completed events).
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { Response } from "undici";
import type { AnswerContext } from "../_shared/client.ts";
import { UpstreamError } from "../_shared/errors.ts";
import { parseJson, readText } from "../_shared/http.ts";
import { decodePreview, downloadImage, fromBase64, upstreamImage } from "../_shared/images.ts";
import type { EncodedUpstreamImage } from "../spec.ts";
import { openAiStreamError } from "./errors.ts";

/** The seed of image i: the upstream's when it says, else the one sent (+ i, as a batch numbers them), else 0 (unknown). */
function seedOf(said: unknown, ctx: AnswerContext, i: number): number {
  if (typeof said === "number" && Number.isSafeInteger(said)) return said;
  return ctx.call.seed === undefined ? 0 : ctx.call.seed + i;
}

async function readJson(res: Response, ctx: AnswerContext): Promise<EncodedUpstreamImage[]> {
  const provider = ctx.settings.id;
  const body = parseJson(await readText(res, provider), provider, res.status) as { data?: unknown };
  if (!Array.isArray(body.data) || body.data.length === 0) throw new UpstreamError("bad_response", `provider "${provider}" answered without images`, { status: res.status });
  const images: EncodedUpstreamImage[] = [];
  for (const [i, item] of (body.data as Record<string, unknown>[]).entries()) {
    const seed = seedOf(item?.seed, ctx, i);
    if (typeof item?.b64_json === "string") images.push(fromBase64(item.b64_json, seed, provider));
    else if (item?.url !== undefined) images.push(upstreamImage(await downloadImage(ctx.http, item.url, ctx.signal, provider), seed, provider));
    else throw new UpstreamError("bad_response", `provider "${provider}" answered an image without b64_json or url`, { status: res.status });
  }
  return images;
}

async function readStream(res: Response, ctx: AnswerContext): Promise<EncodedUpstreamImage[]> {
  const provider = ctx.settings.id;
  const images: EncodedUpstreamImage[] = [];
  // Frames are decoded one after another, so they reach the client in the order they came.
  let frames = Promise.resolve();
  let failure: UpstreamError | undefined;
  const parser = createParser({
    onEvent(ev: EventSourceMessage) {
      if (failure) return;
      const type = ev.event ?? "message";
      if (type === "error") {
        failure = openAiStreamError(provider, ev.data);
        return;
      }
      let data: Record<string, unknown>;
      try {
        data = JSON.parse(ev.data) as Record<string, unknown>;
      } catch {
        failure = new UpstreamError("bad_response", `provider "${provider}" streamed an event that is not JSON`);
        return;
      }
      const kind = typeof data.type === "string" ? data.type : type;
      if (kind === "image_generation.partial_image") {
        const index = typeof data.partial_image_index === "number" ? data.partial_image_index : 0;
        const img = fromBase64(data.b64_json, seedOf(data.seed, ctx, 0), provider);
        // Decoded so the job service encodes it like a local preview; a frame that fails to decode is skipped.
        frames = frames.then(() => decodePreview(img)).then((image) => ctx.onEvent?.({ type: "preview", index, step: index + 1, image }), () => undefined);
      } else if (kind === "image_generation.completed") {
        images.push(fromBase64(data.b64_json, seedOf(data.seed, ctx, images.length), provider));
      }
    },
  });
  const decoder = new TextDecoder();
  if (res.body) {
    for await (const chunk of res.body) {
      parser.feed(decoder.decode(chunk, { stream: true }));
      if (failure) break;
    }
  }
  parser.feed(decoder.decode());
  await frames;
  if (failure) throw failure;
  if (images.length === 0) throw new UpstreamError("bad_response", `provider "${provider}" ended its stream without an image`, { status: res.status });
  return images;
}

export function readAnswer(res: Response, ctx: AnswerContext): Promise<EncodedUpstreamImage[]> {
  const streamed = ctx.call.stream && (res.headers.get("content-type") ?? "").startsWith("text/event-stream");
  return streamed ? readStream(res, ctx) : readJson(res, ctx);
}
