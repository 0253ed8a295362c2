/** The published scheduler configs the sampler tests run on (test/fixtures/schedules, written by diffusers). */
import { readFileSync } from "node:fs";
import { join } from "node:path";

const SCHEDULES = join(import.meta.dirname, "../fixtures/schedules");

/** `scheduler_config.json` of a family's published pipeline (sd15, sdxl, playground, sd3), as its fixture records it. */
export function publishedSchedulerConfig(family: string): Record<string, unknown> {
  // The fixtures are Python's json.dumps, which writes -Infinity where JSON has no such value.
  return JSON.parse(readFileSync(join(SCHEDULES, `${family}_steps10.json`), "utf8").replace(/-Infinity/g, "null")).base_config;
}
