/**
 * `stream: true` answers: Server-Sent Events shaped like the `openai` SDK's ImageGenStreamEvent (generations:
 * `image_generation.partial_image` previews, then one `image_generation.completed` per image) and
 * ImageEditStreamEvent (edits: `image_edit.partial_image`, `image_edit.completed`).
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { toEaselError } from "../../core/errors.ts";
import type { GenerationEvent, GenerationResult } from "../../core/types.ts";
import type { DialectDeps } from "../_shared/dialect.ts";
import { b64, requestContext, warningsHeader } from "../_shared/http.ts";
import { openAiError } from "./errors.ts";
import { type Translated, withWarnings } from "./translate.ts";

const DIALECT_ID = "openai";

export interface StreamOptions {
  /** The events' prefix: generations or edits. */
  kind: "image_generation" | "image_edit";
  background: string | null | undefined;
  quality: string | null | undefined;
}

function streamQuality(q: string | null | undefined): "low" | "medium" | "high" | "auto" {
  return q === "low" || q === "medium" || q === "high" ? q : "auto";
}

/**
 * Writes the SSE stream; the HTTP status is only committed once the first event is ready: a progress event (written
 * as an SSE comment, `: progress <step>/<total>`, which clients skip; it keeps a slow upstream's stream alive) or a
 * partial image.
 */
export async function streamImages(req: FastifyRequest, reply: FastifyReply, deps: DialectDeps, t: Translated, o: StreamOptions): Promise<void> {
  const raw = reply.raw;
  const common = {
    // The images are opaque whatever was asked (W_BACKGROUND_OPAQUE on the job).
    background: o.background === "transparent" ? "opaque" : (o.background ?? "auto"),
    output_format: t.req.output.format,
    quality: streamQuality(o.quality),
    size: t.size,
  };
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    reply.hijack();
    raw.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...warningsHeader(t.warnings),
    });
  };
  const send = (event: string, data: unknown) => {
    if (!raw.writableEnded) raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const onEvent = (e: GenerationEvent) => {
    if (e.type === "progress") {
      start();
      if (!raw.writableEnded) raw.write(`: progress ${e.step}/${e.totalSteps}\n\n`);
      return;
    }
    if (e.type !== "preview") return;
    start();
    send(`${o.kind}.partial_image`, {
      type: `${o.kind}.partial_image`,
      b64_json: b64(e.image.bytes),
      created_at: Math.floor(Date.now() / 1000),
      partial_image_index: e.index,
      ...common,
    });
  };
  let result: GenerationResult;
  try {
    result = await deps.images.generate(withWarnings(t), requestContext(req, reply, { dialect: DIALECT_ID, delivery: "bytes", onEvent }));
  } catch (err) {
    if (!started) throw err;
    const shaped = openAiError(toEaselError(err));
    send("error", shaped.body);
    raw.end();
    return;
  }
  if (!started) {
    start();
    // Headers went out late, so the seed can still travel as a header (previews disable this).
  }
  const created = Math.floor(result.created > 1e11 ? result.created / 1000 : result.created);
  for (const img of result.images) {
    send(`${o.kind}.completed`, {
      type: `${o.kind}.completed`,
      b64_json: b64(img.bytes),
      created_at: created,
      ...common,
      // Easel does not meter tokens; the fields are there because the SDK's type requires them.
      usage: { input_tokens: 0, input_tokens_details: { image_tokens: 0, text_tokens: 0 }, output_tokens: 0, total_tokens: 0 },
      seed: img.seed,
    });
  }
  raw.end();
}
