/** Every API dialect the server speaks; adding one is one folder plus one line here. */
import type { Dialect } from "./_shared/dialect.ts";
import { openAiDialect } from "./openai/index.ts";

export const DIALECTS: readonly Dialect[] = [
  openAiDialect,
];
