/**
 * OpenAI Images routes: `POST /v1/images/generations` (and the gateway path `/api/llm/images/generations` of
 * specs/004), `GET /v1/models`. `stream: true` answers Server-Sent Events shaped like the `openai` SDK's
 * ImageGenStreamEvent (./stream.ts); `POST /v1/images/edits` and `/v1/images/variations` in ./edit-routes.ts.
 */
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { EaselError } from "../../core/errors.ts";
import type { GenerationResult, ModelInfo } from "../../core/types.ts";
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
} from "../_shared/http.ts";
import { preparePrompt, promptHeaders } from "../_shared/prompt-fields.ts";
import { schedulersForKind } from "../_shared/sampler-names.ts";
import { openAiEditRoutes } from "./edit-routes.ts";
import { type GenerationBody, generationBody } from "./schema.ts";
import { streamImages } from "./stream.ts";
import { type Translated, translate, withWarnings } from "./translate.ts";

export const DIALECT_ID = "openai";
export const GENERATION_PATHS = ["/v1/images/generations", "/api/llm/images/generations"];

/** Seconds since the epoch, whichever unit the service used. */
function seconds(t: number): number {
  return Math.floor(t > 1e11 ? t / 1000 : t);
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
          await streamImages(req, reply, deps, t, { kind: "image_generation", background: body.background, quality: body.quality });
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
  await openAiEditRoutes(app, deps);
}
