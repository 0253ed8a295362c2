/** Monica `POST /v1/image/gen/sd`: Bearer key, `{data: [{url}]}` answers. */
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
import { sdBody } from "./schema.ts";
import { translate } from "./translate.ts";

export const DIALECT_ID = "monica-sd";
export const PATH = "/v1/image/gen/sd";

export async function monicaSdRoutes(app: FastifyInstance, deps: DialectDeps): Promise<void> {
  app.withTypeProvider<ZodTypeProvider>().post(
    PATH,
    {
      onRequest: authHook(deps.images, bearerKey),
      schema: {
        tags: ["Monica"],
        summary: "Stable Diffusion image generation (Monica: sdxl, sd3, sd3_5)",
        security: [{ bearer: [] }],
        body: sdBody,
      },
    },
    async (req, reply) => {
      const { req: gen, warnings } = translate(req.body, deps.images);
      // The dialect's own warnings travel with the request, so the job record keeps them (and replays answer them).
      const withWarnings = warnings.length === 0 ? gen : { ...gen, warnings: [...warnings, ...(gen.warnings ?? [])] };
      const ctx = requestContext(req, reply, { dialect: DIALECT_ID, delivery: "url" });
      const prepared = await preparePrompt(deps, withWarnings, req.body, ctx.signal);
      const result = await deps.images.generate(prepared.req, ctx);
      const base = publicBaseUrl(deps.config, req);
      return reply
        .headers({ ...resultHeaders(result), ...promptHeaders(prepared, gen.prompt) })
        .send({ data: result.images.map((img) => ({ url: imageUrl(base, img.url), seed: img.seed })) });
    },
  );
  methodNotAllowed(app, PATH, "POST");
}
