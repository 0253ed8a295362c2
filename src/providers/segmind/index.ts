/** Upstream provider type `segmind`: Segmind's model endpoints (`/v1/<slug>`, `x-api-key`). */
import { createWireClient } from "../_shared/client.ts";
import type { UpstreamProviderType } from "../_shared/upstream.ts";
import { auth, requestBody } from "./api.ts";
import { segmindError } from "./errors.ts";
import { readAnswer } from "./generate.ts";
import { describeSegmindModel } from "./models.ts";

export const segmindProviderType: UpstreamProviderType = {
  type: "segmind",
  describe: describeSegmindModel,
  create: (settings, deps) =>
    createWireClient(settings, deps, {
      describe: describeSegmindModel,
      request: requestBody,
      auth,
      answer: readAnswer,
      error: (status, text, headers, now) => segmindError(settings.id, status, text, headers, now),
    }),
};
