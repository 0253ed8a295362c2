#!/usr/bin/env node
// `npm test`: type check, lint, layer check, then every *.test.ts under src/, test/, bench/ and tools/ with node's test runner.
// Node 20's runner does not expand globs, so the file list is collected here.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "fixtures" || name.startsWith(".")) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const only = process.argv.slice(2);
const files = only.length > 0 ? only : [...walk("src", []), ...walk("test", []), ...walk("bench", []), ...walk("tools", [])].sort();
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

if (only.length === 0) {
  run("npx", ["tsc", "--noEmit", "-p", "."]);
  // The web page's own project (DOM types).
  run("npx", ["tsc", "--noEmit", "-p", "web"]);
  run("npx", ["biome", "lint", "src", "test", "scripts", "bench", "web"]);
  run("node", ["--import", "tsx", "scripts/check-layers.ts"]);
}
run("node", ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...files]);
