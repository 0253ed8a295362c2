/**
 * `easel pull`: a diffusers pipeline from the hub into the models directory. Files are staged in
 * `<models>/.pull/<name>/` (skipped by model discovery, which only registers folders holding model_index.json at the
 * top of the models directory), each verified before it counts; the staged folder is checked with loadCheckpoint and
 * only then renamed to `<models>/<name>`, so a half-downloaded model is never registered. An interrupted pull of the
 * same repository and commit resumes from the staged files.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadCheckpoint } from "../checkpoint/checkpoint.ts";
import { EaselError } from "../core/errors.ts";
import type { WeightVariant } from "../graph/safetensors.ts";
import { downloadVerified } from "./download.ts";
import { type HubOptions, listRepoFiles, parseRepoRef, resolveRevision, resolveUrl } from "./hub-client.ts";
import { type HubFile, selectPipelineFiles } from "./select-files.ts";

export const SOURCE_FILE = ".easel-source.json";
const STAGING = ".pull";

export interface PullOptions extends HubOptions {
  /** `owner/name[@revision]`. */
  ref: string;
  variant?: WeightVariant;
  /** Folder name in the models directory (default: the repository's name). */
  name?: string;
  modelsDir: string;
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
  /** Attempts per file after a dropped connection, each resuming where the last stopped (default 4). */
  attempts?: number;
}

export interface PullProgress {
  phase: "resolving" | "downloading" | "checking" | "done";
  repo: string;
  commit?: string;
  files: { path: string; size: number; done: number }[];
  /** The file being downloaded. */
  current?: string;
  doneBytes: number;
  totalBytes: number;
}

/** What `<model>/.easel-source.json` records about a pulled model. */
export interface ModelSource {
  source: "hub";
  endpoint: string;
  repo: string;
  revision: string;
  commit: string;
  variant?: WeightVariant;
  pulledAt: string;
  files: { path: string; size: number; sha256?: string }[];
}

export interface PullResult {
  name: string;
  dir: string;
  commit: string;
  files: number;
  bytes: number;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A models-directory folder name: no separators, no dot-names (those are Easel's own). */
export function checkModelName(name: string, param = "name"): string {
  if (!NAME_RE.test(name) || name.includes("..")) {
    throw new EaselError("E_INPUT_INVALID", `"${name}" is not a model name: letters, digits, ".", "_" and "-", starting with a letter or digit`, {
      param,
    });
  }
  return name;
}

/** Holds `<staging>.lock` for this process; a lock left by a process that is gone is taken over. */
function lockStaging(lock: string): () => void {
  for (let i = 0; i < 2; i++) {
    try {
      const fd = openSync(lock, "wx");
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const pid = Number(readFileSync(lock, "utf8"));
      let alive = false;
      try {
        process.kill(pid, 0);
        alive = pid > 0;
      } catch {
        alive = false;
      }
      if (alive) throw new EaselError("E_IDEMPOTENCY_CONFLICT", `another pull into the same model name is running (process ${pid})`);
      rmSync(lock, { force: true });
    }
  }
  throw new EaselError("E_INTERNAL", `cannot take the pull lock ${lock}`);
}

export async function pullModel(opts: PullOptions): Promise<PullResult> {
  const { repo, revision } = parseRepoRef(opts.ref);
  const name = checkModelName(opts.name ?? repo.split("/")[1]);
  const target = join(opts.modelsDir, name);
  if (existsSync(target)) {
    throw new EaselError("E_INPUT_INVALID", `${target} already exists; remove it first (easel models rm ${name}) or pull under another --name`, {
      param: "name",
    });
  }
  const progress: PullProgress = { phase: "resolving", repo, files: [], doneBytes: 0, totalBytes: 0 };
  const report = () => opts.onProgress?.(progress);
  report();

  const stagingRoot = join(opts.modelsDir, STAGING);
  mkdirSync(stagingRoot, { recursive: true });
  const staging = join(stagingRoot, name);
  const unlock = lockStaging(`${staging}.lock`);
  try {
    const commit = await resolveRevision(repo, revision, opts);
    progress.commit = commit;
    const tree = await listRepoFiles(repo, commit, opts);

    // Staged files of another repository or commit are not this pull's: start clean.
    const marker = join(staging, ".easel-pull.json");
    const stagedFor = existsSync(marker) ? (JSON.parse(readFileSync(marker, "utf8")) as { repo?: string; commit?: string }) : undefined;
    if (stagedFor && (stagedFor.repo !== repo || stagedFor.commit !== commit)) rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    writeFileSync(marker, JSON.stringify({ repo, commit }));

    const get = (f: HubFile, onBytes?: (n: number) => void) =>
      downloadVerified(f, resolveUrl(repo, commit, f.path, opts), join(staging, f.path), { ...opts, repo, commit, onBytes, signal: opts.signal });

    const indexFile = tree.find((f) => f.path === "model_index.json");
    if (!indexFile) {
      const singles = tree.filter((f) => f.path.endsWith(".safetensors") && !f.path.includes("/")).map((f) => f.path);
      throw new EaselError(
        "E_NOT_SUPPORTED",
        `${repo}@${revision} has no model_index.json, so it is not a diffusers pipeline${singles.length ? ` (single-file checkpoints: ${singles.join(", ")})` : ""}`,
        { details: { repo, revision } },
      );
    }
    await get(indexFile);
    const modelIndex = JSON.parse(readFileSync(join(staging, "model_index.json"), "utf8")) as Record<string, unknown>;
    const files = selectPipelineFiles(tree, modelIndex, opts.variant);
    progress.files = files.map((f) => ({ path: f.path, size: f.lfs?.size ?? f.size, done: 0 }));
    progress.totalBytes = progress.files.reduce((a, f) => a + f.size, 0);
    progress.phase = "downloading";
    report();
    for (const [i, f] of files.entries()) {
      progress.current = f.path;
      const entry = progress.files[i];
      await get(f, (n) => {
        progress.doneBytes += n - entry.done;
        entry.done = n;
        report();
      });
    }
    progress.current = undefined;
    progress.phase = "checking";
    report();
    // The staged folder must load as a checkpoint (every component, config and weight header) before it is served.
    loadCheckpoint(staging, { variant: opts.variant });

    const source: ModelSource = {
      source: "hub",
      endpoint: opts.endpoint,
      repo,
      revision,
      commit,
      ...(opts.variant ? { variant: opts.variant } : {}),
      pulledAt: new Date().toISOString(),
      files: files.map((f) => ({ path: f.path, size: f.lfs?.size ?? f.size, ...(f.lfs ? { sha256: f.lfs.oid } : {}) })),
    };
    writeFileSync(join(staging, SOURCE_FILE), `${JSON.stringify(source, null, 2)}\n`);
    rmSync(marker);
    renameSync(staging, target);
    progress.phase = "done";
    report();
    return { name, dir: target, commit, files: files.length, bytes: progress.totalBytes };
  } finally {
    unlock();
  }
}
