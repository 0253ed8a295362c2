/** The AUTOMATIC1111 web UI API (`/sdapi/v1/*`): Open WebUI's, SillyTavern's and LibreChat's A1111 backends. */
import type { Dialect } from "../_shared/dialect.ts";
import { a1111Error } from "./errors.ts";
import { a1111Routes, DIALECT_ID, PREFIX } from "./routes.ts";

export const a1111Dialect: Dialect = {
  id: DIALECT_ID,
  title: "AUTOMATIC1111",
  prefixes: [`${PREFIX}/`],
  submitPath: `${PREFIX}/txt2img`,
  register: a1111Routes,
  errorReply: a1111Error,
};
