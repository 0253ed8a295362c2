/**
 * Finds Easel's own modules by the name they export (src/ is being reorganised, so paths are looked up, not
 * hard-coded) and imports them: the CLIP tokenizer, the component preparers and the ONNX session factory.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const ROOT = resolve(import.meta.dirname, "../..");

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

let files: string[] | undefined;

/** Imports the module under src/ that declares `export (async) function|class|const <name>`. */
export async function importExport<T = unknown>(name: string): Promise<T> {
  files ??= tsFiles(join(ROOT, "src"));
  const re = new RegExp(`export (async )?(function|class|const) ${name}\\b`);
  const file = files.find((f) => re.test(readFileSync(f, "utf8")));
  if (!file) throw new Error(`no module under src/ exports ${name}`);
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  return mod[name] as T;
}

export const REPO_ROOT = ROOT;
