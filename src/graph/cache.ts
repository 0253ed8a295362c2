/**
 * On-disk cache of built graphs. A graph is stored in `<cacheDir>/<component>-<key>/model.onnx` beside links to
 * its weight files; the key hashes the checkpoint identity (each weight file's absolute path, size, mtime and
 * safetensors header bytes), the component config, the builder version, dtype, execution provider and options, so
 * a second start with the same checkpoint skips building, and any change to the files or the code's version
 * builds anew. Entries are written to a temporary directory and renamed into place, so a reader never sees a
 * half-written entry and two concurrent builders do not clash.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, readSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { EaselError } from "../core/errors.ts";
import type { BuiltGraph } from "./builder.ts";
import { saveModel } from "./external-data.ts";
import { withFloat32Weights } from "./float32-weights.ts";
import { type Int8Options, withInt8Weights } from "./int8-weights.ts";

export interface GraphCacheKey {
  /** Readable component name used in the directory name ("unet", "text_encoder_2"). */
  component: string;
  /** Every file the graph's weights come from (absolute or relative paths). */
  weightFiles: string[];
  /** The parsed component config (JSON-serialisable). */
  config: unknown;
  /** Version of the code that builds this graph; bump when its output changes. */
  builderVersion: string;
  /** Compute dtype of the graph ("float32" on CPU). */
  dtype: string;
  executionProvider: string;
  /** Build options that change the graph (hooks, extra outputs, ...). */
  options?: unknown;
  /**
   * Half-precision weights stored as float32 in a file beside the entry (./float32-weights.ts): about half the
   * peak memory of session creation on the CPU, at 4 bytes of disk per converted parameter.
   */
  float32Weights?: boolean;
  /**
   * The opt-in int8 precision path (./int8-weights.ts): linear and convolution weights quantised per output channel
   * into a file beside the entry. Part of the key only when set, so fp32 entries keep their names.
   */
  int8?: Int8Options;
}

export interface CachedGraph {
  modelPath: string;
  /** True when the graph came from the cache without building. */
  hit: boolean;
  key: string;
}

const MODEL_FILE = "model.onnx";

/** sha256 of a safetensors file's 8-byte length prefix and JSON header (never the tensor data). */
function headerHash(file: string): string {
  const fd = openSync(file, "r");
  try {
    const len = Buffer.alloc(8);
    if (readSync(fd, len, 0, 8, 0) !== 8) throw new EaselError("E_CHECKPOINT_INVALID", `${file}: too short for a safetensors header`);
    const n = Number(len.readBigUInt64LE(0));
    if (n > 100 * 1024 * 1024) throw new EaselError("E_CHECKPOINT_INVALID", `${file}: safetensors header length ${n} is implausible`);
    const header = Buffer.alloc(n);
    readSync(fd, header, 0, n, 8);
    return createHash("sha256").update(len).update(header).digest("hex");
  } finally {
    closeSync(fd);
  }
}

/** The hex cache key of a graph (see the module comment for what it covers). */
export function graphCacheKey(k: GraphCacheKey): string {
  const files = [...k.weightFiles].map((f) => resolve(f)).sort().map((file) => {
    const st = statSync(file);
    return { file, size: st.size, mtimeMs: st.mtimeMs, header: headerHash(file) };
  });
  const payload = JSON.stringify({
    component: k.component,
    files,
    config: k.config,
    builderVersion: k.builderVersion,
    dtype: k.dtype,
    executionProvider: k.executionProvider,
    options: k.options ?? null,
    float32Weights: k.float32Weights ?? false,
    ...(k.int8 ? { int8: { exclude: [...(k.int8.exclude ?? [])] } } : {}),
  });
  return createHash("sha256").update(payload).digest("hex").slice(0, 32);
}

/**
 * The cached model for `key`, building it with `build()` (and saving it with external data pointing at the
 * weight files) when absent.
 */
export function getOrBuildGraph(cacheDir: string, key: GraphCacheKey, build: () => BuiltGraph): CachedGraph {
  if (!/^[A-Za-z0-9_.-]+$/.test(key.component)) {
    throw new EaselError("E_INTERNAL", `graph cache component name "${key.component}" must be [A-Za-z0-9_.-]+`);
  }
  const hash = graphCacheKey(key);
  const dir = join(resolve(cacheDir), `${key.component}-${hash}`);
  const modelPath = join(dir, MODEL_FILE);
  if (existsSync(modelPath)) return { modelPath, hit: true, key: hash };

  let built = build();
  if (key.int8) built = withInt8Weights(built, join(resolve(cacheDir), `${key.component}-${hash}.int8.bin`), key.int8);
  const graph = key.float32Weights ? withFloat32Weights(built, join(resolve(cacheDir), `${key.component}-${hash}.f32.bin`)) : built;
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    saveModel(graph, tmp, MODEL_FILE, { "easel.cache_key": hash, "easel.component": key.component });
    writeFileSync(
      join(tmp, "key.json"),
      JSON.stringify({ component: key.component, builderVersion: key.builderVersion, dtype: key.dtype, executionProvider: key.executionProvider, weightFiles: key.weightFiles }, null, 2),
    );
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // Another process finished the same entry first: use theirs.
      if (!existsSync(modelPath)) throw e;
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { modelPath, hit: false, key: hash };
}
