/** Monica's Stable Diffusion image API (specs/003). */
import type { Dialect } from "../_shared/dialect.ts";
import { monicaSdError } from "./errors.ts";
import { DIALECT_ID, monicaSdRoutes, PATH } from "./routes.ts";

export const monicaSdDialect: Dialect = {
  id: DIALECT_ID,
  title: "Monica",
  prefixes: ["/v1/image/"],
  submitPath: PATH,
  register: monicaSdRoutes,
  errorReply: monicaSdError,
};
