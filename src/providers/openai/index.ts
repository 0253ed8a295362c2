/** Upstream provider type `openai`: OpenAI's Images API and any OpenAI-compatible server (another Easel, LocalAI, a gateway). */
import { createWireClient } from "../_shared/client.ts";
import type { UpstreamProviderType } from "../_shared/upstream.ts";
import { auth, requestBody } from "./api.ts";
import { openAiError } from "./errors.ts";
import { readAnswer } from "./generate.ts";
import { describeOpenAiModel } from "./models.ts";

export const openAiProviderType: UpstreamProviderType = {
  type: "openai",
  describe: describeOpenAiModel,
  create: (settings, deps) =>
    createWireClient(settings, deps, {
      describe: describeOpenAiModel,
      request: requestBody,
      auth,
      answer: readAnswer,
      error: (status, text, headers, now) => openAiError(settings.id, status, text, headers, now),
    }),
};
