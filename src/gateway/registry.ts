/**
 * The model registry: public model names (and aliases) -> where they run. Local checkpoints come from the models
 * directory (every diffusers folder, registered under its folder name and its family's aliases; every single-file
 * `.safetensors` checkpoint under its file name, from a converted copy) and from
 * `models.entries` in the config (a name mapped to a checkpoint path). Upstream models come from entries that name a
 * provider (or weighted `targets`); what they accept is the provider type's table (providers/<type>/models.ts).
 * Any entry may list `fallbacks`: other registered names, tried in order when its own targets fail.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { ensureConvertedSingleFile } from "../checkpoint/single-file.ts";
import { EaselError } from "../core/errors.ts";
import type { ModelKind } from "../core/limits.ts";
import type { ModelInfo } from "../core/types.ts";
import type { ModelDescription } from "../engine/engine.ts";
import type { UpstreamModelSpec } from "../providers/index.ts";

export interface LocalModel {
  info: ModelInfo;
  backend: "local";
  dir: string;
  /** Other registered model names tried, in order, when this one fails. */
  fallbacks?: readonly string[];
}

/** One upstream that serves a model: a configured provider and the model's name there. */
export interface UpstreamTarget {
  provider: string;
  providerType: string;
  upstreamModel: string;
  weight: number;
}

export interface UpstreamModel {
  info: ModelInfo;
  backend: "upstream";
  /** Equivalent targets, one chosen per request by weight; the others are tried when it fails. */
  targets: readonly UpstreamTarget[];
  fallbacks: readonly string[];
  dir?: undefined;
}

export type RegisteredModel = LocalModel | UpstreamModel;

export class ModelRegistry {
  private readonly byName = new Map<string, RegisteredModel>();
  private readonly byLowerName = new Map<string, RegisteredModel>();
  private readonly all: RegisteredModel[];

  constructor(models: readonly RegisteredModel[]) {
    this.all = [...models];
    // Ids first, then aliases in order, so an explicit name always beats a family alias.
    for (const m of models) this.add(m.info.id, m);
    for (const m of models) for (const a of m.info.aliases) this.add(a, m);
  }

  get models(): readonly RegisteredModel[] {
    return this.all;
  }

  /**
   * Adds a model while the server runs (a model pulled through the admin API), listed last. Its id must be free;
   * an alias another model already answers to stays with that model.
   */
  register(m: RegisteredModel): void {
    if (this.find(m.info.id)) throw new EaselError("E_INPUT_INVALID", `a model named "${m.info.id}" is already registered`, { param: "name" });
    this.all.push(m);
    this.add(m.info.id, m);
    for (const a of m.info.aliases) this.add(a, m);
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

  /** Like find, for a local checkpoint: a missing model is an E_MODEL_NOT_FOUND that says how to install it. */
  require(name: string, modelsDir: string): LocalModel {
    const m = this.find(name);
    if (m?.backend === "local") return m;
    if (m) throw new EaselError("E_INTERNAL", `model "${name}" is served by provider "${m.info.backend}", not by a local checkpoint`);
    throw new EaselError(
      "E_MODEL_NOT_FOUND",
      `model "${name}" is not installed. Put its diffusers folder (with model_index.json) in ${modelsDir} ` +
        `or map the name to a checkpoint in the config's models.entries, then restart.`,
      { param: "model" },
    );
  }
}

/** A `models.entries` value (config/schema.ts). */
export interface ModelEntry {
  path?: string;
  provider?: string;
  upstreamModel?: string;
  targets?: readonly { provider: string; upstreamModel?: string; weight: number }[];
  fallbacks?: readonly string[];
  kind?: ModelKind;
  aliases: readonly string[];
}

export interface DiscoverOptions {
  modelsDir: string;
  entries: Readonly<Record<string, ModelEntry>>;
  describe: (dir: string) => Promise<ModelDescription>;
  /**
   * What an upstream model accepts: its provider's type and spec. Throws E_INPUT_INVALID for a provider that is
   * not configured or a model its type does not know. Without it, entries that name a provider are refused.
   */
  describeUpstream?: (provider: string, upstreamModel: string) => { providerType: string; spec: UpstreamModelSpec };
  now?: () => number;
  /** Called for each folder that could not be loaded (the server keeps going without it). */
  onSkip?: (dir: string, error: unknown) => void;
  /** A model always registered (the one that ships with Easel), unless a configured model already has its id. */
  builtin?: { id: string; dir: string; description: string };
  /** The model a request that names none gets: listed first. Default: the built-in model, else the first found. */
  defaultModel?: string;
  /** Names the default (first listed) model also answers to, each unless another registered name already has it. */
  defaultAliases?: readonly string[];
}

/** A local checkpoint's registry entry, from the engine's description of its folder. */
export function localModel(id: string, dir: string, d: ModelDescription, extraAliases: readonly string[], created: number, fallbacks: readonly string[] = []): LocalModel {
  return {
    backend: "local",
    dir,
    ...(fallbacks.length > 0 ? { fallbacks } : {}),
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

function upstreamModel(id: string, entry: ModelEntry, opts: DiscoverOptions, created: number): UpstreamModel {
  const where = `models.entries.${id}`;
  if (!opts.describeUpstream) {
    throw new EaselError("E_NOT_SUPPORTED", `${where}: upstream providers are not available here`, { param: `${where}.provider` });
  }
  const wanted = entry.targets ?? [{ provider: entry.provider as string, upstreamModel: entry.upstreamModel, weight: 1 }];
  const targets: UpstreamTarget[] = [];
  let spec: UpstreamModelSpec | undefined;
  for (const [i, t] of wanted.entries()) {
    const upstreamModel = t.upstreamModel ?? id;
    let d: { providerType: string; spec: UpstreamModelSpec };
    try {
      d = opts.describeUpstream(t.provider, upstreamModel);
    } catch (e) {
      const param = entry.targets ? `${where}.targets.${i}` : `${where}.provider`;
      throw new EaselError("E_INPUT_INVALID", `${where}: ${(e as Error).message}`, { param, cause: e });
    }
    spec ??= d.spec;
    targets.push({ provider: t.provider, providerType: d.providerType, upstreamModel, weight: t.weight });
  }
  const s = spec as UpstreamModelSpec;
  return {
    backend: "upstream",
    targets,
    fallbacks: entry.fallbacks ?? [],
    info: {
      id,
      family: s.family,
      kind: entry.kind ?? s.kind,
      backend: targets[0].provider,
      aliases: entry.aliases.filter((a) => a !== id),
      defaults: { ...s.defaults },
      limits: s.limits,
      created,
    },
  };
}

/** Every fallback names another registered model. */
function checkFallbacks(registry: ModelRegistry): void {
  for (const m of registry.models) {
    for (const [i, name] of (m.fallbacks ?? []).entries()) {
      const f = registry.find(name);
      if (!f || f === m) {
        const why = f ? "is the model itself" : "is not a registered model";
        throw new EaselError("E_INPUT_INVALID", `models.entries.${m.info.id}.fallbacks: "${name}" ${why}`, {
          param: `models.entries.${m.info.id}.fallbacks.${i}`,
        });
      }
    }
  }
}

export async function discoverModels(opts: DiscoverOptions): Promise<ModelRegistry> {
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  const found: RegisteredModel[] = [];
  for (const [id, entry] of Object.entries(opts.entries)) {
    if (entry.provider || entry.targets) {
      found.push(upstreamModel(id, entry, opts, now()));
      continue;
    }
    if (!entry.path) throw new EaselError("E_INPUT_INVALID", `models.entries.${id} needs a path`, { param: `models.entries.${id}` });
    // Absolute, normalised paths: the folder scan below compares against them, and the engine caches by path.
    const dir = resolve(opts.modelsDir, entry.path);
    found.push(localModel(id, dir, await opts.describe(dir), entry.aliases, now(), entry.fallbacks));
  }
  if (existsSync(opts.modelsDir)) {
    for (const name of readdirSync(opts.modelsDir).sort()) {
      const dir = resolve(opts.modelsDir, name);
      if (name.endsWith(".safetensors") && statSync(dir).isFile()) {
        // A single-file checkpoint: served from its converted folder (checkpoint/single-file.ts), under the file's name.
        const id = name.slice(0, -".safetensors".length);
        if (found.some((m) => m.info.id === id)) continue;
        try {
          const converted = ensureConvertedSingleFile(dir, opts.modelsDir);
          found.push(localModel(id, converted, await opts.describe(converted), [], now()));
        } catch (e) {
          opts.onSkip?.(dir, e);
        }
        continue;
      }
      if (!statSync(dir).isDirectory() || !existsSync(join(dir, "model_index.json"))) continue;
      if (found.some((m) => m.dir === dir)) continue;
      if (found.some((m) => m.info.id === name)) {
        // Two models under one id would list twice and answer as one: the config's entry keeps the name.
        opts.onSkip?.(dir, new EaselError("E_INPUT_INVALID", `models.entries.${name} already uses the name "${name}"; this folder is not served`));
        continue;
      }
      try {
        found.push(localModel(name, dir, await opts.describe(dir), [], now()));
      } catch (e) {
        opts.onSkip?.(dir, e);
      }
    }
  }
  const builtin = opts.builtin;
  if (builtin && !found.some((m) => m.info.id === builtin.id || m.dir === builtin.dir)) {
    const m = localModel(builtin.id, builtin.dir, await opts.describe(builtin.dir), [], now());
    found.push({ ...m, info: { ...m.info, description: builtin.description } });
  }
  const wanted = opts.defaultModel ?? builtin?.id;
  if (wanted !== undefined) {
    const first = new ModelRegistry(found).find(wanted);
    if (!first) {
      if (opts.defaultModel !== undefined) {
        throw new EaselError("E_INPUT_INVALID", `models.default: "${opts.defaultModel}" is not a registered model`, { param: "models.default" });
      }
    } else found.sort((a, b) => Number(b === first) - Number(a === first));
  }
  const head = found[0];
  if (head && opts.defaultAliases?.length) {
    const taken = new ModelRegistry(found);
    const free = opts.defaultAliases.filter((a, i, all) => !taken.find(a) && all.indexOf(a) === i);
    if (free.length > 0) found[0] = { ...head, info: { ...head.info, aliases: [...head.info.aliases, ...free] } } as RegisteredModel;
  }
  const registry = new ModelRegistry(found);
  checkFallbacks(registry);
  return registry;
}
