/** Monica `POST /v1/image/gen/playground`: Bearer key, `{data: [{url}]}` answers. */
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { DialectDeps } from "../_shared/dialect.ts";
import {
  authHook,
  bearerKey,
  imageUrl,
  methodNotAllowed,
  publicBaseUrl,
  requestContext,
  resultHeaders,
} from "../_shared/http.ts";
import { preparePrompt, promptHeaders } from "../_shared/prompt-fields.ts";
import { playgroundBody } from "./schema.ts";
import { translate } from "./translate.ts";

export const DIALECT_ID = "monica-playground";
export const PATH = "/v1/image/gen/playground";

export async function monicaPlaygroundRoutes(app: FastifyInstance, deps: DialectDeps): Promise<void> {
  app.withTypeProvider<ZodTypeProvider>().post(
    PATH,
    {
      onRequest: authHook(deps.images, bearerKey),
      schema: {
        tags: ["Monica"],
        summary: "Playground v2.5 image generation (Monica)",
        security: [{ bearer: [] }],
        body: playgroundBody,
      },
    },
    async (req, reply) => {
      const gen = translate(req.body, deps.images);
      const ctx = requestContext(req, reply, { dialect: DIALECT_ID, delivery: "url" });
      const prepared = await preparePrompt(deps, gen, req.body, ctx.signal);
      const result = await deps.images.generate(prepared.req, ctx);
      const base = publicBaseUrl(deps.config, req);
      return reply
        .headers({ ...resultHeaders(result), ...promptHeaders(prepared, gen.prompt) })
        .send({ data: result.images.map((img) => ({ url: imageUrl(base, img.url), seed: img.seed })) });
    },
  );
  methodNotAllowed(app, PATH, "POST");
}
