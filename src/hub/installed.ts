/** The models directory as `easel models list` / `easel models rm` see it: folders, their size on disk, their source. */
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { EaselError } from "../core/errors.ts";
import { checkModelName, type ModelSource, SOURCE_FILE } from "./pull.ts";

export interface InstalledModel {
  name: string;
  dir: string;
  bytes: number;
  /** Set for models that `easel pull` fetched; undefined for folders put there by hand. */
  source?: ModelSource;
}

/** Bytes of every file under `dir` (symbolic links counted as themselves, not followed). */
export function folderBytes(dir: string): number {
  let total = 0;
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    const s = lstatSync(p);
    total += s.isDirectory() ? folderBytes(p) : s.size;
  }
  return total;
}

function readSource(dir: string): ModelSource | undefined {
  const f = join(dir, SOURCE_FILE);
  if (!existsSync(f)) return undefined;
  try {
    return JSON.parse(readFileSync(f, "utf8")) as ModelSource;
  } catch {
    return undefined;
  }
}

/** Model folders (holding model_index.json) directly under `modelsDir`, by name. */
export function listInstalledModels(modelsDir: string): InstalledModel[] {
  if (!existsSync(modelsDir)) return [];
  const out: InstalledModel[] = [];
  for (const name of readdirSync(modelsDir).sort()) {
    const dir = resolve(modelsDir, name);
    if (name.startsWith(".") || !statSync(dir).isDirectory() || !existsSync(join(dir, "model_index.json"))) continue;
    out.push({ name, dir, bytes: folderBytes(dir), source: readSource(dir) });
  }
  return out;
}

/** "hf:owner/name@abc1234 (fp16)" or "local folder". */
export function describeSource(s: ModelSource | undefined): string {
  if (!s) return "local folder";
  return `hub ${s.repo}@${s.commit.slice(0, 12)}${s.revision !== s.commit ? ` (${s.revision})` : ""}${s.variant ? ` ${s.variant}` : ""}`;
}

/** Deletes the model folder `name` (and a pull of it left staged); throws E_NOT_FOUND when there is none. */
export function removeInstalledModel(modelsDir: string, name: string): { dir: string; bytes: number } {
  checkModelName(name);
  const dir = resolve(modelsDir, name);
  const staged = resolve(modelsDir, ".pull", name);
  const isModel = existsSync(dir) && statSync(dir).isDirectory() && existsSync(join(dir, "model_index.json"));
  if (!isModel && !existsSync(staged)) {
    throw new EaselError("E_NOT_FOUND", `no model "${name}" in ${modelsDir}`, { param: "name" });
  }
  const bytes = (isModel ? folderBytes(dir) : 0) + (existsSync(staged) ? folderBytes(staged) : 0);
  if (isModel) rmSync(dir, { recursive: true });
  rmSync(staged, { recursive: true, force: true });
  return { dir, bytes };
}
