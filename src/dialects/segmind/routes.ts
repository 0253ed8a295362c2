/**
 * Segmind `POST /v1/playground-v2.5`: `x-api-key`, raw image/jpeg (base64: false) or `{image, images, seed}`
 * JSON (base64: true), and `x-remaining-credits` on every response.
 */
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { DialectDeps, RequestHead } from "../_shared/dialect.ts";
import { authHook, b64, headerKey, methodNotAllowed, principalOf, requestContext, resultHeaders } from "../_shared/http.ts";
import { preparePrompt, promptHeaders } from "../_shared/prompt-fields.ts";
import { segmindBody } from "./schema.ts";
import { translate } from "./translate.ts";

export const DIALECT_ID = "segmind";
export const PATH = "/v1/playground-v2.5";
export const apiKey = headerKey("x-api-key");

/** Unlimited balances are written "Infinity", which parses as a number in JavaScript and Python. */
function creditsValue(n: number | null): string {
  return n === null ? "Infinity" : String(n);
}

/** For responses where the route's own hook may not have run (404, 405, 401): "0" when the key is not valid. */
export async function remainingCreditsHeader(req: RequestHead, deps: DialectDeps): Promise<Record<string, string>> {
  let principal = req.easelPrincipal;
  if (!principal) {
    try {
      principal = await deps.images.authenticate(apiKey(req));
    } catch {
      return { "x-remaining-credits": "0" };
    }
  }
  return { "x-remaining-credits": creditsValue(await deps.images.remainingCredits(principal)) };
}

export async function segmindRoutes(app: FastifyInstance, deps: DialectDeps): Promise<void> {
  app.withTypeProvider<ZodTypeProvider>().post(
    PATH,
    {
      onRequest: authHook(deps.images, apiKey),
      schema: {
        tags: ["Segmind"],
        summary: "Playground v2.5 (Segmind)",
        security: [{ apiKey: [] }],
        body: segmindBody,
      },
    },
    async (req, reply) => {
      const { req: gen, base64 } = translate(req.body, deps.images);
      const ctx = requestContext(req, reply, { dialect: DIALECT_ID, delivery: "bytes" });
      const prepared = await preparePrompt(deps, gen, req.body, ctx.signal);
      const result = await deps.images.generate(prepared.req, ctx);
      const remaining = result.remainingCredits ?? (await deps.images.remainingCredits(principalOf(req)));
      reply.headers({ ...resultHeaders(result), ...promptHeaders(prepared, gen.prompt), "x-remaining-credits": creditsValue(remaining) });
      if (!base64) {
        const img = result.images[0];
        return reply.type("image/jpeg").send(Buffer.from(img.bytes.buffer, img.bytes.byteOffset, img.bytes.byteLength));
      }
      const all = result.images.map((img) => b64(img.bytes));
      return reply.send({ image: all[0], images: all, seed: result.seed });
    },
  );
  methodNotAllowed(app, PATH, "POST");
}
