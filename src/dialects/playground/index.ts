/** Playground AI's external image API (specs/001). */
import type { Dialect } from "../_shared/dialect.ts";
import { playgroundError } from "./errors.ts";
import { DIALECT_ID, PATH, playgroundRoutes } from "./routes.ts";

export const playgroundDialect: Dialect = {
  id: DIALECT_ID,
  title: "Playground",
  prefixes: ["/api/models/"],
  submitPath: PATH,
  register: playgroundRoutes,
  errorReply: playgroundError,
};
