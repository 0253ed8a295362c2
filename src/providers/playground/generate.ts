/** Reading a Playground answer: `{images: [base64 PNG], seed}`. */
import type { Response } from "undici";
import type { AnswerContext } from "../_shared/client.ts";
import { UpstreamError } from "../_shared/errors.ts";
import { parseJson, readText } from "../_shared/http.ts";
import { fromBase64 } from "../_shared/images.ts";
import type { EncodedUpstreamImage } from "../spec.ts";

export async function readAnswer(res: Response, ctx: AnswerContext): Promise<EncodedUpstreamImage[]> {
  const provider = ctx.settings.id;
  const body = parseJson(await readText(res, provider), provider, res.status) as { images?: unknown; seed?: unknown };
  if (!Array.isArray(body.images) || body.images.length === 0) {
    throw new UpstreamError("bad_response", `provider "${provider}" answered without images`, { status: res.status });
  }
  const seed = typeof body.seed === "number" && Number.isSafeInteger(body.seed) ? body.seed : (ctx.call.seed ?? 0);
  return body.images.map((b64, i) => fromBase64(b64, seed + i, provider));
}
