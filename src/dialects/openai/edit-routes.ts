/**
 * OpenAI `POST /v1/images/edits` and `POST /v1/images/variations` (multipart/form-data, as the `openai` SDK's
 * images.edit and images.createVariation send them). The answer is the generations answer: `data[]` with `url` or
 * `b64_json` (and the seed), plus `size`, `output_format`, `background` and `quality` for edits; `stream: true` on
 * edits answers the SDK's ImageEditStreamEvent stream.
 */
import multipart from "@fastify/multipart";
import type { FastifyInstance } from "fastify";
import type { DialectDeps } from "../_shared/dialect.ts";
import { authHook, b64, bearerKey, imageUrl, methodNotAllowed, publicBaseUrl, requestContext, resultHeaders } from "../_shared/http.ts";
import { EDIT_FILE_FIELDS, translateEdit, translateVariation, VARIATION_FILE_FIELDS } from "./edits.ts";
import { readForm } from "./multipart.ts";
import { streamImages } from "./stream.ts";
import { withWarnings } from "./translate.ts";

const DIALECT_ID = "openai";
/** OpenAI's edits take up to 16 images, plus the mask. */
const MAX_EDIT_FILES = 17;

export async function openAiEditRoutes(app: FastifyInstance, deps: DialectDeps): Promise<void> {
  // Registered in the OpenAI dialect's scope only; limits are set per request in readForm.
  await app.register(multipart);
  const auth = authHook(deps.images, bearerKey);
  const fileBytes = deps.config.server.imageBodyLimitBytes;
  const schema = (summary: string) => ({ tags: ["OpenAI"], summary, security: [{ bearer: [] }], consumes: ["multipart/form-data"] });

  app.post("/v1/images/edits", { onRequest: auth, schema: schema("Edit an image, or inpaint it under a mask (OpenAI Images API)") }, async (req, reply) => {
    const form = await readForm(req, { fileBytes, fileFields: EDIT_FILE_FIELDS, maxFiles: MAX_EDIT_FILES });
    const t = await translateEdit(form, deps.images);
    if (t.stream) {
      await streamImages(req, reply, deps, t, { kind: "image_edit", background: form.fields.background, quality: form.fields.quality });
      return reply;
    }
    const result = await deps.images.generate(withWarnings(t), requestContext(req, reply, { dialect: DIALECT_ID, delivery: t.delivery }));
    const base = publicBaseUrl(deps.config, req);
    const quality = form.fields.quality;
    return reply.headers(resultHeaders(result)).send({
      created: Math.floor(result.created > 1e11 ? result.created / 1000 : result.created),
      data: result.images.map((img) => ({
        ...(t.responseFormat === "url" ? { url: imageUrl(base, img.url) } : { b64_json: b64(img.bytes) }),
        revised_prompt: t.prompt,
        seed: img.seed,
      })),
      background: "opaque",
      output_format: t.req.output.format,
      ...(quality === "low" || quality === "medium" || quality === "high" ? { quality } : {}),
      size: t.size,
    });
  });
  methodNotAllowed(app, "/v1/images/edits", "POST");

  app.post("/v1/images/variations", { onRequest: auth, schema: schema("Variations of an image (OpenAI Images API)") }, async (req, reply) => {
    const form = await readForm(req, { fileBytes, fileFields: VARIATION_FILE_FIELDS, maxFiles: 1 });
    const t = await translateVariation(form, deps.images);
    const result = await deps.images.generate(withWarnings(t), requestContext(req, reply, { dialect: DIALECT_ID, delivery: t.delivery }));
    const base = publicBaseUrl(deps.config, req);
    return reply.headers(resultHeaders(result)).send({
      created: Math.floor(result.created > 1e11 ? result.created / 1000 : result.created),
      data: result.images.map((img) => ({
        ...(t.responseFormat === "url" ? { url: imageUrl(base, img.url) } : { b64_json: b64(img.bytes) }),
        seed: img.seed,
      })),
    });
  });
  methodNotAllowed(app, "/v1/images/variations", "POST");
}
