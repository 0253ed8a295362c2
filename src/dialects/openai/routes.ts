/**
 * OpenAI Images routes: `POST /v1/images/generations` (and the gateway path `/api/llm/images/generations` of
 * specs/004), `GET /v1/models`. `stream: true` answers Server-Sent Events shaped like the `openai` SDK's
 * ImageGenStreamEvent: `image_generation.partial_image` previews, then one `image_generation.completed` per image.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { EaselError, toEaselError } from "../../core/errors.ts";
import type { GenerationEvent, GenerationRequest, GenerationResult, ModelInfo } from "../../core/types.ts";
import type { DialectDeps } from "../_shared/dialect.ts";
import {
  authHook,
  b64,
  bearerKey,
  imageUrl,
  methodNotAllowed,
  publicBaseUrl,
  requestContext,
  resultHeaders,
  warningsHeader,
} from "../_shared/http.ts";
import { preparePrompt, promptHeaders } from "../_shared/prompt-fields.ts";
import { schedulersForKind } from "../_shared/sampler-names.ts";
import { openAiError } from "./errors.ts";
import { type GenerationBody, generationBody } from "./schema.ts";
import { type Translated, translate } from "./translate.ts";

export const DIALECT_ID = "openai";
export const GENERATION_PATHS = ["/v1/images/generations", "/api/llm/images/generations"];

/** Seconds since the epoch, whichever unit the service used. */
function seconds(t: number): number {
  return Math.floor(t > 1e11 ? t / 1000 : t);
}

/** The request carrying the dialect's own warnings too, so the job record keeps them (and replays answer them). */
function withWarnings(t: Translated): GenerationRequest {
  return t.warnings.length === 0 ? t.req : { ...t.req, warnings: [...t.warnings, ...(t.req.warnings ?? [])] };
}

function streamQuality(q: GenerationBody["quality"]): "low" | "medium" | "high" | "auto" {
  return q === "low" || q === "medium" || q === "high" ? q : "auto";
}

/**
 * OpenAI's model object, plus what Easel knows of it: backend, family, aliases, defaults, what requests it accepts
 * (sizes, steps, guidance, images, img2img) and the scheduler ids meant for it, and a description where known.
 */
function modelObject(m: ModelInfo) {
  const l = m.limits;
  return {
    id: m.id,
    object: "model",
    created: seconds(m.created),
    owned_by: m.backend === "local" ? "easel" : m.backend,
    backend: m.backend,
    family: m.family,
    kind: m.kind,
    aliases: m.aliases,
    defaults: m.defaults,
    limits: {
      sizeMultiple: l.sizeMultiple,
      minSize: l.minSize,
      maxSize: l.maxSize,
      maxImages: l.maxImages,
      maxSteps: l.maxSteps,
      guidance: l.guidance,
      negativePrompt: l.negativePrompt,
      img2img: l.img2img === false ? false : { defaultStrength: l.img2img.defaultStrength },
    },
    schedulers: schedulersForKind(m.kind),
    ...(m.description ? { description: m.description } : {}),
  };
}

function jsonResponse(t: Translated, body: GenerationBody, result: GenerationResult, base: string) {
  const quality = body.quality === "low" || body.quality === "medium" || body.quality === "high" ? body.quality : undefined;
  return {
    created: seconds(result.created),
    data: result.images.map((img) => ({
      ...(t.responseFormat === "url" ? { url: imageUrl(base, img.url) } : { b64_json: b64(img.bytes) }),
      // The prompt the model got: the client's, or the style's / language model's rewrite of it.
      revised_prompt: t.req.prompt,
      seed: img.seed,
    })),
    background: "opaque",
    output_format: t.req.output.format,
    ...(quality ? { quality } : {}),
    size: t.size,
  };
}

/**
 * Writes the SSE stream; the HTTP status is only committed once the first event is ready: a progress event (written
 * as an SSE comment, `: progress <step>/<total>`, which clients skip; it keeps a slow upstream's stream alive) or a
 * partial image.
 */
async function streamGeneration(
  req: FastifyRequest,
  reply: FastifyReply,
  deps: DialectDeps,
  t: Translated,
  body: GenerationBody,
): Promise<void> {
  const raw = reply.raw;
  const common = {
    background: body.background ?? "auto",
    output_format: t.req.output.format,
    quality: streamQuality(body.quality),
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
    send("image_generation.partial_image", {
      type: "image_generation.partial_image",
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
  for (const img of result.images) {
    send("image_generation.completed", {
      type: "image_generation.completed",
      b64_json: b64(img.bytes),
      created_at: seconds(result.created),
      ...common,
      // Easel does not meter tokens; the fields are there because the SDK's type requires them.
      usage: { input_tokens: 0, input_tokens_details: { image_tokens: 0, text_tokens: 0 }, output_tokens: 0, total_tokens: 0 },
      seed: img.seed,
    });
  }
  raw.end();
}

export async function openAiRoutes(app: FastifyInstance, deps: DialectDeps): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const auth = authHook(deps.images, bearerKey);

  for (const url of GENERATION_PATHS) {
    r.post(
      url,
      {
        onRequest: auth,
        schema: {
          tags: ["OpenAI"],
          summary: "Create images (OpenAI Images API)",
          security: [{ bearer: [] }],
          body: generationBody,
        },
      },
      async (req, reply) => {
        const body = req.body;
        const translated = translate(body, deps.images);
        // Style presets and prompt checks (extension fields), before admission: a refusal charges nothing.
        const prepared = await preparePrompt(deps, translated.req, body);
        const t: Translated = { ...translated, req: prepared.req };
        if (t.stream) {
          await streamGeneration(req, reply, deps, t, body);
          return reply;
        }
        const result = await deps.images.generate(withWarnings(t), requestContext(req, reply, { dialect: DIALECT_ID, delivery: t.delivery }));
        const base = publicBaseUrl(deps.config, req);
        const out = jsonResponse(t, body, result, base);
        return reply.headers({ ...resultHeaders(result), ...promptHeaders(prepared, body.prompt) }).send(out);
      },
    );
    methodNotAllowed(app, url, "POST");
  }

  r.get(
    "/v1/models",
    { onRequest: auth, schema: { tags: ["OpenAI"], summary: "List installed models", security: [{ bearer: [] }] } },
    async () => ({ object: "list", data: deps.images.listModels().map(modelObject) }),
  );
  r.get(
    "/v1/models/:model",
    { onRequest: auth, schema: { tags: ["OpenAI"], summary: "Retrieve a model", security: [{ bearer: [] }] } },
    async (req) => {
      const name = (req.params as { model: string }).model;
      const m = deps.images.findModel(name);
      if (!m) throw new EaselError("E_MODEL_NOT_FOUND", `The model '${name}' does not exist`, { param: "model" });
      return modelObject(m);
    },
  );
}
