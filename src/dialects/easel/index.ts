/** Easel's native API: the job records behind every dialect's generations (`/v1/jobs`), the style presets (`/v1/styles`). */
import type { Dialect } from "../_shared/dialect.ts";
import { easelError } from "./errors.ts";
import { DIALECT_ID, easelRoutes, PREFIX } from "./routes.ts";
import { stylesRoutes } from "./styles.ts";

export const easelDialect: Dialect = {
  id: DIALECT_ID,
  title: "Jobs",
  prefixes: [`${PREFIX}/`],
  // Unknown paths under /v1/jobs/ are Easel's, whichever key header they carry (Segmind claims x-api-key ones).
  claims: (req) => req.url.split("?")[0].startsWith(`${PREFIX}/`),
  register: async (app, deps) => {
    await easelRoutes(app, deps);
    await stylesRoutes(app, deps);
  },
  errorReply: easelError,
};
