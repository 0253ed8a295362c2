/** Reading a Segmind answer: the raw image (base64: false), or `{image, images?}` JSON from servers that send it anyway. */
import type { Response } from "undici";
import type { AnswerContext } from "../_shared/client.ts";
import { UpstreamError } from "../_shared/errors.ts";
import { parseJson, readBytes } from "../_shared/http.ts";
import { fromBase64, upstreamImage } from "../_shared/images.ts";
import type { EncodedUpstreamImage } from "../spec.ts";

export async function readAnswer(res: Response, ctx: AnswerContext): Promise<EncodedUpstreamImage[]> {
  const provider = ctx.settings.id;
  const seed = ctx.call.seed ?? 0;
  const bytes = await readBytes(res, provider);
  if (!(res.headers.get("content-type") ?? "").includes("json")) return [upstreamImage(bytes, seed, provider)];
  const body = parseJson(Buffer.from(bytes).toString("utf8"), provider, res.status) as { image?: unknown; images?: unknown };
  const all = Array.isArray(body.images) ? body.images : body.image !== undefined ? [body.image] : [];
  if (all.length === 0) throw new UpstreamError("bad_response", `provider "${provider}" answered without an image`, { status: res.status });
  return all.map((b64, i) => fromBase64(b64, seed + i, provider));
}
