/** Every API dialect the server speaks; adding one is one folder plus one line here. */
import type { Dialect } from "./_shared/dialect.ts";
import { a1111Dialect } from "./a1111/index.ts";
import { easelDialect } from "./easel/index.ts";
import { monicaPlaygroundDialect } from "./monica-playground/index.ts";
import { monicaSdDialect } from "./monica-sd/index.ts";
import { openAiDialect } from "./openai/index.ts";
import { playgroundDialect } from "./playground/index.ts";
import { segmindDialect } from "./segmind/index.ts";

export const DIALECTS: readonly Dialect[] = [
  easelDialect,
  openAiDialect,
  monicaPlaygroundDialect,
  monicaSdDialect,
  playgroundDialect,
  segmindDialect,
  a1111Dialect,
];
