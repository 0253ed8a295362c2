/** OpenAI error bodies: `{error: {message, type, param, code}}` with OpenAI's statuses (429 insufficient_quota). */
import type { EaselError } from "../../core/errors.ts";
import type { ErrorReply } from "../_shared/dialect.ts";
import { openAiStyleError } from "../_shared/openai-style-errors.ts";

export function openAiError(e: EaselError): ErrorReply {
  return openAiStyleError(e);
}
