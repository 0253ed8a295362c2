/** Monica answers errors like OpenAI (its error table is OpenAI's: 401 keys, 429 quota, 500, 503). */
import type { EaselError } from "../../core/errors.ts";
import type { ErrorReply } from "../_shared/dialect.ts";
import { openAiStyleError } from "../_shared/openai-style-errors.ts";

export function monicaError(e: EaselError): ErrorReply {
  return openAiStyleError(e);
}
