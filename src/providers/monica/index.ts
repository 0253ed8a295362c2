/** Upstream provider type `monica`: Monica's Playground and Stable Diffusion endpoints, chosen by the upstream model. */
import { createWireClient } from "../_shared/client.ts";
import type { UpstreamProviderType } from "../_shared/upstream.ts";
import { auth, requestBody } from "./api.ts";
import { monicaError } from "./errors.ts";
import { readAnswer } from "./generate.ts";
import { describeMonicaModel } from "./models.ts";

export const monicaProviderType: UpstreamProviderType = {
  type: "monica",
  describe: describeMonicaModel,
  create: (settings, deps) =>
    createWireClient(settings, deps, {
      describe: describeMonicaModel,
      request: requestBody,
      auth,
      answer: readAnswer,
      error: (status, text, headers, now) => monicaError(settings.id, status, text, headers, now),
    }),
};
