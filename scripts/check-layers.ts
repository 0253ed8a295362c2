/**
 * Checks the import direction of DESIGN.md §2: a unit may import only from lower layers (and from itself);
 * sibling units (models/sd15 vs models/sdxl, dialects/openai vs dialects/segmind, ...) never import each other,
 * and only src/runtime imports onnxruntime-node. In src/samplers each top-level file is one sampler (index.ts is their
 * registry): samplers never import each other, and what they share lives in _shared/ (and schedules/), which imports no
 * sampler file.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const LAYERS: string[][] = [
  ["core"],
  ["config", "tensor"],
  ["graph", "runtime", "samplers", "storage", "queue"],
  ["checkpoint"],
  ["models", "hub"],
  ["engine"],
  ["providers"],
  ["gateway"],
  ["prompts"],
  ["jobs"],
  ["dialects"],
  ["server"],
  ["cli"],
];
const rank = new Map<string, number>();
for (const [i, units] of LAYERS.entries()) for (const u of units) rank.set(u, i);
/** Units whose sub-folders are siblings that must not import each other. */
const PLURAL = new Set(["models", "providers", "dialects", "storage", "queue"]);
/** Sub-folders that hold what every sibling shares (they may not import a sibling). */
const SHARED = new Set(["_shared", "components", "text", "pipeline", "testing"]);

/** Sub-folders of src/samplers that hold what every sampler shares (they may not import a top-level sampler file). */
const SAMPLER_SHARED = new Set(["_shared", "schedules"]);

const root = resolve("src");
const files: string[] = [];
const walk = (d: string) => {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith(".ts")) files.push(p);
  }
};
walk(root);

/** "models/sd15" for src/models/sd15/x.ts, "models" for src/models/index.ts, "core" for src/core/x.ts. */
function unitOf(file: string): { top: string; sub?: string } {
  const parts = relative(root, file).split("/");
  const top = parts[0];
  const sub = PLURAL.has(top) && parts.length > 2 ? parts[1] : undefined;
  return { top, sub };
}

/** Within src/samplers: sibling sampler files never import each other; the shared folders import no top-level file. */
function samplerProblem(file: string, target: string): string | undefined {
  const [, a, ...restA] = relative(root, file).split("/");
  const [, b, ...restB] = relative(root, target).split("/");
  const topA = restA.length === 0;
  const topB = restB.length === 0;
  if (topA && topB && a !== "index.ts" && b !== "index.ts" && a !== b) return `sibling sampler import ${a} -> ${b}`;
  if (!topA && SAMPLER_SHARED.has(a) && topB) return `samplers/${a} must not import sampler file samplers/${b}`;
  return undefined;
}

const problems: string[] = [];
const importRe = /(?:import|export)\s[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;
for (const file of files) {
  if (file.endsWith(".test.ts")) continue;
  const src = readFileSync(file, "utf8");
  const from = unitOf(file);
  for (const m of src.matchAll(importRe)) {
    const spec = m[1] ?? m[2];
    if (spec === "onnxruntime-node" && from.top !== "runtime") {
      problems.push(`${relative(".", file)}: only src/runtime may import onnxruntime-node`);
      continue;
    }
    if (!spec.startsWith(".")) continue;
    const target = resolve(dirname(file), spec);
    if (!target.startsWith(root + "/")) continue;
    const to = unitOf(target);
    const rf = rank.get(from.top);
    const rt = rank.get(to.top);
    if (rf === undefined || rt === undefined) {
      problems.push(`${relative(".", file)}: unknown unit for ${spec}`);
      continue;
    }
    if (from.top === to.top) {
      if (from.sub && to.sub && from.sub !== to.sub && !SHARED.has(to.sub) && !SHARED.has(from.sub)) {
        problems.push(`${relative(".", file)}: sibling import ${from.top}/${from.sub} -> ${to.top}/${to.sub}`);
      }
      if (from.sub && SHARED.has(from.sub) && to.sub && !SHARED.has(to.sub)) {
        problems.push(`${relative(".", file)}: ${from.top}/${from.sub} must not import ${to.top}/${to.sub}`);
      }
      const sampler = from.top === "samplers" ? samplerProblem(file, target) : undefined;
      if (sampler) problems.push(`${relative(".", file)}: ${sampler}`);
      continue;
    }
    if (rt >= rf) problems.push(`${relative(".", file)}: ${from.top} must not import ${to.top} (${spec})`);
  }
}
if (problems.length > 0) {
  console.error(`Import direction violations (DESIGN.md §2):\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`layers ok: ${files.length} files checked`);
