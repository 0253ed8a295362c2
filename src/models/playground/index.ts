import type { ModelFamily } from "../_shared/family.ts";
import { PLAYGROUND_ALIASES, playgroundDefaults } from "./config.ts";
import { loadPlayground } from "./pipeline.ts";

export const playgroundFamily: ModelFamily = {
  id: "playground",
  aliases: () => [...PLAYGROUND_ALIASES],
  defaults: playgroundDefaults,
  load: loadPlayground,
};
