/** The OpenAI-compatible Images dialect (specs/004). */
import type { Dialect } from "../_shared/dialect.ts";
import { openAiError } from "./errors.ts";
import { DIALECT_ID, openAiRoutes } from "./routes.ts";

export const openAiDialect: Dialect = {
  id: DIALECT_ID,
  title: "OpenAI",
  prefixes: ["/v1/", "/api/llm/"],
  register: openAiRoutes,
  errorReply: openAiError,
};
