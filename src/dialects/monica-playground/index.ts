/** Monica's Playground v2.5 image API (specs/000). */
import type { Dialect } from "../_shared/dialect.ts";
import { monicaError } from "./errors.ts";
import { DIALECT_ID, monicaPlaygroundRoutes, PATH } from "./routes.ts";

export const monicaPlaygroundDialect: Dialect = {
  id: DIALECT_ID,
  title: "Monica",
  prefixes: ["/v1/image/"],
  submitPath: PATH,
  register: monicaPlaygroundRoutes,
  errorReply: monicaError,
};
