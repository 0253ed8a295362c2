/**
 * `npm run fixtures:tiny -- <family> <outDir> [--seed N] [--dtype F32|F16]`: writes a seeded tiny diffusers
 * checkpoint (random weights, real layout) for family sd15, sdxl, playground, sd3 or sd3_5.
 */
import { resolve } from "node:path";
import { sd3TransformerConfigFromJson } from "../src/models/sd3/config.ts";
import { buildMmditGraph } from "../src/models/sd3/mmdit.graph.ts";
import { TINY_FAMILIES, type TinyFamily, type TinyTransformerBuilder, writeTinyCheckpoint } from "../src/models/testing/tiny-checkpoint.ts";

const USAGE = `usage: make-tiny-checkpoint <${TINY_FAMILIES.join("|")}> <outDir> [--seed N] [--dtype F32|F16]`;

function fail(msg: string): never {
  console.error(`${msg}\n${USAGE}`);
  process.exit(2);
}

const positional: string[] = [];
let seed = 0;
let dtype: "F32" | "F16" = "F32";
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--seed") {
    const v = args[++i];
    if (v === undefined || !/^\d+$/.test(v) || Number(v) >= 2 ** 32) fail(`--seed must be an integer in [0, 2^32), got ${v}`);
    seed = Number(v);
  } else if (a === "--dtype") {
    const v = args[++i];
    if (v !== "F32" && v !== "F16") fail(`--dtype must be F32 or F16, got ${v}`);
    dtype = v;
  } else if (a === "-h" || a === "--help") {
    console.log(USAGE);
    process.exit(0);
  } else if (a.startsWith("-")) {
    fail(`unknown option ${a}`);
  } else {
    positional.push(a);
  }
}
if (positional.length !== 2) fail("expected <family> and <outDir>");
const [family, outDir] = positional;
if (!TINY_FAMILIES.includes(family as TinyFamily)) fail(`family must be one of ${TINY_FAMILIES.join(", ")}, got ${family}`);
const dir = resolve(outDir);
// The SD3 transformer's weights are recorded from the family's own builder (_shared cannot import it).
const transformer: TinyTransformerBuilder = (json, w) => buildMmditGraph(sd3TransformerConfigFromJson(json), w);
writeTinyCheckpoint(dir, { family: family as TinyFamily, seed, dtype, transformer });
console.log(`wrote ${family} tiny checkpoint (seed ${seed}, ${dtype}) to ${dir}`);
