/** Segmind's Playground v2.5 API (specs/002). */
import type { Dialect } from "../_shared/dialect.ts";
import { segmindError } from "./errors.ts";
import { DIALECT_ID, PATH, remainingCreditsHeader, segmindRoutes } from "./routes.ts";

export const segmindDialect: Dialect = {
  id: DIALECT_ID,
  title: "Segmind",
  prefixes: ["/v1/"],
  // Segmind serves every model under /v1/<slug>: an unknown /v1/ path asked with x-api-key is a Segmind 404.
  claims: (req) => req.headers["x-api-key"] !== undefined && req.headers.authorization === undefined,
  submitPath: PATH,
  register: segmindRoutes,
  errorReply: segmindError,
  commonHeaders: remainingCreditsHeader,
};
