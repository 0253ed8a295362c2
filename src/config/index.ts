/**
 * Configuration: defaults < JSON file < environment (EASEL_*) < command-line flags, parsed once into a frozen
 * Config. This is the only module that reads process.env.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { EaselError } from "../core/errors.ts";
import { type Config, type ConfigInput, configSchema } from "./schema.ts";

export type { Config, ConfigInput } from "./schema.ts";

/** One storage.s3 setting as a layer: the bucket may come from another layer, and the merged whole is validated. */
const s3Layer = (s3: Partial<NonNullable<NonNullable<ConfigInput["storage"]>["s3"]>>) => ({ storage: { s3 } }) as ConfigInput;

/** Environment variables understood, and where each lands in the config. */
const ENV_KEYS: Record<string, (v: string) => ConfigInput> = {
  EASEL_DATA_DIR: (v) => ({ dataDir: v }),
  EASEL_HOST: (v) => ({ server: { host: v } }),
  EASEL_PORT: (v) => ({ server: { port: Number(v) } }),
  EASEL_PUBLIC_BASE_URL: (v) => ({ server: { publicBaseUrl: v } }),
  EASEL_ALLOW_OPEN: (v) => ({ server: { allowOpen: v === "1" || v === "true" } }),
  EASEL_TRUST_PROXY: (v) => ({ server: { trustProxy: v === "1" || v === "true" } }),
  EASEL_CORS_ORIGINS: (v) => ({ server: { corsOrigins: v.split(",").map((o) => o.trim()).filter(Boolean) } }),
  EASEL_ADMIN_KEY: (v) => ({ server: { adminKey: v } }),
  EASEL_MODELS_DIR: (v) => ({ models: { dir: v } }),
  EASEL_EXECUTION_PROVIDER: (v) => ({ engine: { executionProvider: v as "cpu" } }),
  EASEL_THREADS: (v) => ({ engine: { intraOpThreads: Number(v) } }),
  EASEL_PRECISION: (v) => ({ engine: { precision: v as "fp32" } }),
  EASEL_MEMORY_LIMIT_GIB: (v) => ({ engine: { memoryLimitGiB: Number(v) } }),
  EASEL_CACHE_DIR: (v) => ({ engine: { cacheDir: v } }),
  HF_ENDPOINT: (v) => ({ hub: { endpoint: v.replace(/\/+$/, "") } }),
  HF_TOKEN: (v) => ({ hub: { token: v } }),
  EASEL_S3_BUCKET: (v) => s3Layer({ bucket: v }),
  EASEL_S3_ENDPOINT: (v) => s3Layer({ endpoint: v }),
  EASEL_S3_REGION: (v) => s3Layer({ region: v }),
  EASEL_S3_FORCE_PATH_STYLE: (v) => s3Layer({ forcePathStyle: v === "1" || v === "true" }),
  EASEL_S3_PREFIX: (v) => s3Layer({ prefix: v }),
  EASEL_DATABASE_URL: (v) => ({ storage: { databaseUrl: v } }),
  EASEL_REDIS_URL: (v) => ({ queue: { redisUrl: v } }),
  EASEL_QUEUE_NAME: (v) => ({ queue: { name: v } }),
  EASEL_QUEUE_LEASE_SECONDS: (v) => ({ queue: { leaseSeconds: Number(v) } }),
  EASEL_URL_SECRET: (v) => ({ server: { urlSecret: v } }),
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Deep merge of plain objects; later wins, arrays and scalars are replaced. */
export function mergeConfig(...layers: ConfigInput[]): ConfigInput {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer as Record<string, unknown>)) {
      if (v === undefined) continue;
      out[k] = isObject(v) && isObject(out[k]) ? mergeConfig(out[k] as ConfigInput, v as ConfigInput) : v;
    }
  }
  return out as ConfigInput;
}

function deepFreeze<T>(v: T): T {
  if (isObject(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

export interface LoadConfigOptions {
  /** JSON config file (`--config FILE`). */
  file?: string;
  env?: Record<string, string | undefined>;
  /** Values from command-line flags (highest precedence). */
  flags?: ConfigInput;
}

/**
 * Provider keys given as `{env: NAME}` are read from the environment here; one whose variable is unset stays
 * `{env: NAME}`, and the server refuses to start with it (the gateway says which variable is missing).
 */
function withProviderKeys<C extends { providers: Record<string, { apiKey?: string | { env: string } }> }>(c: C, env: Record<string, string | undefined>): C {
  for (const p of Object.values(c.providers)) {
    if (typeof p.apiKey === "object" && env[p.apiKey.env]) p.apiKey = env[p.apiKey.env];
  }
  return c;
}

export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const env = opts.env ?? process.env;
  const layers: ConfigInput[] = [];
  if (opts.file) {
    let text: string;
    try {
      text = readFileSync(opts.file, "utf8");
    } catch (e) {
      throw new EaselError("E_INPUT_INVALID", `cannot read config file ${opts.file}: ${(e as Error).message}`, {
        param: "config",
      });
    }
    try {
      layers.push(JSON.parse(text) as ConfigInput);
    } catch (e) {
      throw new EaselError("E_INPUT_INVALID", `config file ${opts.file} is not valid JSON: ${(e as Error).message}`, {
        param: "config",
      });
    }
  }
  for (const [key, toLayer] of Object.entries(ENV_KEYS)) {
    const v = env[key];
    if (v !== undefined && v !== "") layers.push(toLayer(v));
  }
  if (opts.flags) layers.push(opts.flags);
  const merged = mergeConfig(...layers);
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.join(".");
    throw new EaselError("E_INPUT_INVALID", `invalid configuration at ${where || "(root)"}: ${issue.message}`, {
      param: where,
    });
  }
  const unknown = unknownKey(merged, parsed.data);
  if (unknown) {
    throw new EaselError("E_INPUT_INVALID", `invalid configuration: unknown key ${unknown} (a misspelt or retired setting would otherwise be ignored)`, {
      param: unknown,
    });
  }
  return deepFreeze(withProviderKeys(parsed.data, env));
}

/**
 * The first key of the input that the parsed config dropped: zod objects strip keys they do not know, so a typo or
 * a retired setting would silently change nothing. Records keep every key, so only real unknowns are found.
 */
function unknownKey(input: unknown, parsed: unknown, path = ""): string | undefined {
  if (!input || typeof input !== "object" || Array.isArray(input) || !parsed || typeof parsed !== "object") return undefined;
  for (const [k, v] of Object.entries(input)) {
    const at = path ? `${path}.${k}` : k;
    if (v === undefined) continue;
    if (!(k in parsed)) return at;
    const found = unknownKey(v, (parsed as Record<string, unknown>)[k], at);
    if (found) return found;
  }
  return undefined;
}

/**
 * The drivers shared with other nodes (a shared database, queue or image store). When any is, every node must sign
 * image URLs with one secret: `server.urlSecret` is required, and a start without it is refused naming it.
 */
export function sharedDrivers(c: Config): string[] {
  return [
    ...(c.storage.databaseUrl ? ["storage.databaseUrl (PostgreSQL)"] : []),
    ...(c.queue.redisUrl ? ["queue.redisUrl (Redis)"] : []),
    ...(c.storage.s3 ? ["storage.s3 (S3 bucket)"] : []),
  ];
}

/**
 * The configured URL-signing secret. Nodes that share a database, queue or bucket must sign alike, so there a
 * secret kept in one node's data directory will not do: the start is refused, naming the setting.
 */
export function sharedUrlSecret(config: Config): Buffer | undefined {
  if (config.server.urlSecret) return Buffer.from(config.server.urlSecret, "utf8");
  const shared = sharedDrivers(config);
  if (shared.length > 0) {
    throw new EaselError(
      "E_INPUT_INVALID",
      `server.urlSecret (EASEL_URL_SECRET) is required when a driver is shared (${shared.join(", ")}): every node must sign image URLs with the same secret; set it to the same random string of at least 32 characters (e.g. \`openssl rand -hex 32\`) on every node`,
      { param: "server.urlSecret" },
    );
  }
  return undefined;
}

/** Paths derived from the config, in one place. */
export function configPaths(c: Config): { dataDir: string; modelsDir: string; cacheDir: string; dbFile: string; imagesDir: string } {
  return {
    dataDir: c.dataDir,
    modelsDir: c.models.dir ?? join(c.dataDir, "models"),
    cacheDir: c.engine.cacheDir ?? join(c.dataDir, "cache"),
    dbFile: join(c.dataDir, "easel.db"),
    imagesDir: join(c.dataDir, "images"),
  };
}
