/** The OpenAI-compatible Images dialect (specs/004). */
import type { Dialect } from "../_shared/dialect.ts";
import { openAiError } from "./errors.ts";
import { DIALECT_ID, GENERATION_PATHS, openAiRoutes } from "./routes.ts";

export const openAiDialect: Dialect = {
  id: DIALECT_ID,
  title: "OpenAI",
  prefixes: ["/v1/", "/api/llm/"],
  submitPath: GENERATION_PATHS[0],
  register: openAiRoutes,
  errorReply: openAiError,
};
