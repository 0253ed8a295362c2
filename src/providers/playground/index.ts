/** Upstream provider type `playground`: Playground's external API (`filter_model` chooses the model; img2img). */
import { createWireClient } from "../_shared/client.ts";
import type { UpstreamProviderType } from "../_shared/upstream.ts";
import { auth, requestBody } from "./api.ts";
import { playgroundError } from "./errors.ts";
import { readAnswer } from "./generate.ts";
import { describePlaygroundModel } from "./models.ts";

export const playgroundProviderType: UpstreamProviderType = {
  type: "playground",
  describe: describePlaygroundModel,
  create: (settings, deps) =>
    createWireClient(settings, deps, {
      describe: describePlaygroundModel,
      request: requestBody,
      auth,
      answer: readAnswer,
      error: (status, text, headers, now) => playgroundError(settings.id, status, text, headers, now),
    }),
};
