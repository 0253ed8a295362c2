/** Playground `POST /api/models/external/v1`: Bearer key, `{images: [base64 PNG], seed}` answers. */
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { DialectDeps } from "../_shared/dialect.ts";
import { authHook, b64, bearerKey, methodNotAllowed, requestContext, resultHeaders } from "../_shared/http.ts";
import { preparePrompt, promptHeaders } from "../_shared/prompt-fields.ts";
import { externalBody } from "./schema.ts";
import { translate } from "./translate.ts";

export const DIALECT_ID = "playground";
export const PATH = "/api/models/external/v1";

export async function playgroundRoutes(app: FastifyInstance, deps: DialectDeps): Promise<void> {
  app.withTypeProvider<ZodTypeProvider>().post(
    PATH,
    {
      onRequest: authHook(deps.images, bearerKey),
      // init_image is uploaded as base64 inside the JSON body: the one dialect route allowed a large body.
      bodyLimit: deps.config.server.imageBodyLimitBytes,
      schema: {
        tags: ["Playground"],
        summary: "Image generation (Playground AI external API)",
        security: [{ bearer: [] }],
        body: externalBody,
      },
    },
    async (req, reply) => {
      const gen = await translate(req.body, deps.images);
      const ctx = requestContext(req, reply, { dialect: DIALECT_ID, delivery: "bytes" });
      const prepared = await preparePrompt(deps, gen, req.body, ctx.signal);
      const result = await deps.images.generate(prepared.req, ctx);
      return reply
        .headers({ ...resultHeaders(result), ...promptHeaders(prepared, gen.prompt) })
        .send({ images: result.images.map((img) => b64(img.bytes)), seed: result.seed });
    },
  );
  methodNotAllowed(app, PATH, "POST");
}
