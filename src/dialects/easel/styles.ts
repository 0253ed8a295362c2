/**
 * `GET /v1/styles`: the style presets requests can name in `prompt_filter` (any dialect): Playground's 36 and the
 * configured ones (config.prompts.styles), each with its template and negative prompt.
 */
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { DialectDeps } from "../_shared/dialect.ts";
import { authHook, bearerKey, headerKey, methodNotAllowed } from "../_shared/http.ts";
import { promptsOf } from "../_shared/prompt-fields.ts";
import { errorBody } from "./schema.ts";

export const STYLES_PATH = "/v1/styles";

const xApiKey = headerKey("x-api-key");

const styleList = z.object({
  object: z.literal("list"),
  data: z.array(z.object({ id: z.string(), object: z.literal("style"), prompt: z.string(), negative_prompt: z.string() })),
});

export async function stylesRoutes(app: FastifyInstance, deps: DialectDeps): Promise<void> {
  app.withTypeProvider<ZodTypeProvider>().get(
    STYLES_PATH,
    {
      onRequest: authHook(deps.images, (req) => (req.headers.authorization ? bearerKey(req) : xApiKey(req))),
      schema: {
        tags: ["Jobs"],
        summary: "List the style presets (prompt_filter)",
        security: [{ bearer: [] }, { apiKey: [] }],
        response: { 200: styleList, 401: errorBody },
      },
    },
    async () => ({
      object: "list" as const,
      data: promptsOf(deps)
        .styles()
        .map((s) => ({ id: s.id, object: "style" as const, prompt: s.prompt, negative_prompt: s.negativePrompt })),
    }),
  );
  methodNotAllowed(app, STYLES_PATH, "GET");
}
