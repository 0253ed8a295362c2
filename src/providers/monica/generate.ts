/** Reading a Monica answer: `{data: [{url}]}` (an Easel upstream adds `seed`); each URL is fetched without credentials. */
import type { Response } from "undici";
import type { AnswerContext } from "../_shared/client.ts";
import { UpstreamError } from "../_shared/errors.ts";
import { parseJson, readText } from "../_shared/http.ts";
import { downloadImage, upstreamImage } from "../_shared/images.ts";
import type { EncodedUpstreamImage } from "../spec.ts";

export async function readAnswer(res: Response, ctx: AnswerContext): Promise<EncodedUpstreamImage[]> {
  const provider = ctx.settings.id;
  const body = parseJson(await readText(res, provider), provider, res.status) as { data?: unknown };
  if (!Array.isArray(body.data) || body.data.length === 0) throw new UpstreamError("bad_response", `provider "${provider}" answered without images`, { status: res.status });
  const images: EncodedUpstreamImage[] = [];
  for (const [i, item] of (body.data as Record<string, unknown>[]).entries()) {
    const said = item?.seed;
    // Monica's page gives no per-image seed; the one sent, numbered as a batch, when the upstream says none.
    const seed = typeof said === "number" && Number.isSafeInteger(said) ? said : (ctx.call.seed ?? 0) + i;
    images.push(upstreamImage(await downloadImage(ctx.http, item?.url, ctx.signal, provider), seed, provider));
  }
  return images;
}
