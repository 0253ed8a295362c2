/**
 * The model registry: public model names (and aliases) -> where they run. Local checkpoints come from the models
 * directory (every diffusers folder, registered under its folder name and its family's aliases) and from
 * `models.entries` in the config (a name mapped to a checkpoint path).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { EaselError } from "../core/errors.ts";
import type { ModelInfo } from "../core/types.ts";
import type { ModelDescription } from "../engine/engine.ts";

export interface LocalModel {
  info: ModelInfo;
  backend: "local";
  dir: string;
}

export type RegisteredModel = LocalModel;

export class ModelRegistry {
  private readonly byName = new Map<string, RegisteredModel>();
  private readonly byLowerName = new Map<string, RegisteredModel>();

  constructor(readonly models: readonly RegisteredModel[]) {
    // Ids first, then aliases in order, so an explicit name always beats a family alias.
    for (const m of models) this.add(m.info.id, m);
    for (const m of models) for (const a of m.info.aliases) this.add(a, m);
  }

  private add(name: string, m: RegisteredModel): void {
    if (!this.byName.has(name)) this.byName.set(name, m);
    const lower = name.toLowerCase();
    if (!this.byLowerName.has(lower)) this.byLowerName.set(lower, m);
  }

  list(): ModelInfo[] {
    return this.models.map((m) => m.info);
  }

  find(name: string): RegisteredModel | undefined {
    return this.byName.get(name) ?? this.byLowerName.get(name.toLowerCase());
  }

  /** Like find, but a missing model is an E_MODEL_NOT_FOUND that says how to install it. */
  require(name: string, modelsDir: string): RegisteredModel {
    const m = this.find(name);
    if (m) return m;
    throw new EaselError(
      "E_MODEL_NOT_FOUND",
      `model "${name}" is not installed. Put its diffusers folder (with model_index.json) in ${modelsDir} ` +
        `or map the name to a checkpoint in the config's models.entries, then restart.`,
      { param: "model" },
    );
  }
}

export interface DiscoverOptions {
  modelsDir: string;
  entries: Readonly<Record<string, { path?: string; provider?: string; aliases: readonly string[] }>>;
  describe: (dir: string) => Promise<ModelDescription>;
  now?: () => number;
  /** Called for each folder that could not be loaded (the server keeps going without it). */
  onSkip?: (dir: string, error: unknown) => void;
}

function info(id: string, dir: string, d: ModelDescription, extraAliases: readonly string[], created: number): LocalModel {
  return {
    backend: "local",
    dir,
    info: {
      id,
      family: d.family,
      kind: d.kind,
      backend: "local",
      aliases: [...extraAliases, ...d.aliases].filter((a) => a !== id),
      defaults: {
        width: d.defaults.width,
        height: d.defaults.height,
        steps: d.defaults.steps,
        guidanceScale: d.defaults.guidanceScale,
        scheduler: d.defaults.scheduler,
      },
      limits: d.limits,
      created,
    },
  };
}

export async function discoverModels(opts: DiscoverOptions): Promise<ModelRegistry> {
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  const found: RegisteredModel[] = [];
  for (const [id, entry] of Object.entries(opts.entries)) {
    if (entry.provider) {
      throw new EaselError(
        "E_NOT_SUPPORTED",
        `models.entries.${id}: upstream provider "${entry.provider}" is not available in this version of Easel`,
        { param: `models.entries.${id}.provider` },
      );
    }
    if (!entry.path) throw new EaselError("E_INPUT_INVALID", `models.entries.${id} needs a path`, { param: `models.entries.${id}` });
    // Absolute, normalised paths: the folder scan below compares against them, and the engine caches by path.
    const dir = resolve(opts.modelsDir, entry.path);
    found.push(info(id, dir, await opts.describe(dir), entry.aliases, now()));
  }
  if (existsSync(opts.modelsDir)) {
    for (const name of readdirSync(opts.modelsDir).sort()) {
      const dir = resolve(opts.modelsDir, name);
      if (!statSync(dir).isDirectory() || !existsSync(join(dir, "model_index.json"))) continue;
      if (found.some((m) => m.dir === dir)) continue;
      try {
        found.push(info(name, dir, await opts.describe(dir), [], now()));
      } catch (e) {
        opts.onSkip?.(dir, e);
      }
    }
  }
  return new ModelRegistry(found);
}
