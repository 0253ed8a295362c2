/** Playground AI's external image API (specs/001). */
import type { Dialect } from "../_shared/dialect.ts";
import { playgroundError } from "./errors.ts";
import { DIALECT_ID, playgroundRoutes } from "./routes.ts";

export const playgroundDialect: Dialect = {
  id: DIALECT_ID,
  title: "Playground",
  prefixes: ["/api/models/"],
  register: playgroundRoutes,
  errorReply: playgroundError,
};
