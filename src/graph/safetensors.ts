/**
 * Reader and writer for the safetensors format (huggingface/safetensors): an 8-byte little-endian header length N,
 * N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}`, then the
 * tensor bytes; offsets are relative to the first byte after the header.
 *
 * Checkpoints can be far larger than one Buffer (2 GiB), so only headers are read up front (positioned reads of the
 * first bytes) and each tensor's bytes are read on demand from its own byte range.
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { EaselError } from "../core/errors.ts";

export type SafetensorsDtype = "F32" | "F16" | "BF16" | "F64" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute path of the file holding the bytes. */
  file: string;
  /** Absolute byte offset of the tensor's first byte in `file`. */
  offset: number;
  byteLength: number;
}

export const DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Headers above this are not plausible (the reference implementation caps them at 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

function invalid(file: string, what: string): EaselError {
  return new EaselError("E_CHECKPOINT_INVALID", `${file}: ${what}`, { details: { file } });
}

function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === "string" && Object.hasOwn(DTYPE_SIZE, s);
}

function readExactly(fd: number, length: number, position: number, file: string): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw invalid(file, `unexpected end of file reading ${length} bytes at offset ${position}`);
    done += n;
  }
  return buf;
}

/** Parses and validates one file's header; returns its entries (absolute offsets) and metadata. */
export function readSafetensorsHeader(path: string): { entries: TensorEntry[]; metadata: Record<string, string> } {
  const file = resolve(path);
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: cannot open weights file (${(e as Error).message})`, {
      details: { file },
      cause: e,
    });
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw invalid(file, `file is ${size} bytes, too short for a safetensors header`);
    const lenBuf = readExactly(fd, 8, 0, file);
    const headerLen = lenBuf.readBigUInt64LE(0);
    if (headerLen < 2n || headerLen > BigInt(MAX_HEADER_BYTES)) {
      throw invalid(file, `header length ${headerLen} is not in [2, ${MAX_HEADER_BYTES}] (not a safetensors file?)`);
    }
    const n = Number(headerLen);
    if (8 + n > size) throw invalid(file, `header length ${n} runs past the end of the ${size}-byte file (truncated?)`);
    const text = readExactly(fd, n, 8, file).toString("utf8");
    let header: unknown;
    try {
      header = JSON.parse(text);
    } catch (e) {
      throw invalid(file, `header is not valid JSON (${(e as Error).message})`);
    }
    if (header === null || typeof header !== "object" || Array.isArray(header)) {
      throw invalid(file, "header is not a JSON object");
    }
    const dataStart = 8 + n;
    const dataSize = size - dataStart;
    const entries: TensorEntry[] = [];
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === "__metadata__") {
        if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw invalid(file, "__metadata__ is not an object");
        for (const [k, v] of Object.entries(raw)) {
          if (typeof v !== "string") throw invalid(file, `__metadata__.${k} is not a string`);
        }
        metadata = raw as Record<string, string>;
        continue;
      }
      if (raw === null || typeof raw !== "object") throw invalid(file, `tensor "${name}": entry is not an object`);
      const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
      if (!isDtype(dtype)) {
        throw invalid(file, `tensor "${name}": unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(", ")})`);
      }
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw invalid(file, `tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
      }
      if (
        !Array.isArray(offsets) ||
        offsets.length !== 2 ||
        !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
        offsets[0] > offsets[1]
      ) {
        throw invalid(file, `tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 <= begin <= end`);
      }
      const [begin, end] = offsets as [number, number];
      if (end > dataSize) {
        throw invalid(file, `tensor "${name}": data_offsets [${begin}, ${end}] run past the ${dataSize} data bytes (truncated file?)`);
      }
      const expected = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
      if (end - begin !== expected) {
        throw invalid(
          file,
          `tensor "${name}": ${end - begin} data bytes, but shape [${shape.join(", ")}] of ${dtype} needs ${expected}`,
        );
      }
      entries.push({ name, dtype, shape: [...(shape as number[])], file, offset: dataStart + begin, byteLength: expected });
    }
    const sorted = [...entries].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1];
      if (sorted[i].offset < prev.offset + prev.byteLength) {
        throw invalid(file, `tensors "${prev.name}" and "${sorted[i].name}" have overlapping data ranges`);
      }
    }
    return { entries, metadata };
  } finally {
    closeSync(fd);
  }
}

/** Reads the headers of one or more files (shards of one model) into one name -> entry map; names must be unique. */
export function readSafetensorsIndex(paths: string[]): Map<string, TensorEntry> {
  const out = new Map<string, TensorEntry>();
  for (const p of paths) {
    for (const e of readSafetensorsHeader(p).entries) {
      const prior = out.get(e.name);
      if (prior) throw invalid(e.file, `tensor "${e.name}" is also in ${prior.file}`);
      out.set(e.name, e);
    }
  }
  return out;
}

export type WeightVariant = "fp16" | "bf16";

/** Which files hold a component's weights, and the variant they are (undefined = the plain, usually fp32, files). */
export interface ComponentWeightFiles {
  files: string[];
  variant?: WeightVariant;
  /** The sharded index JSON used, if any. */
  index?: string;
}

const SHARD_RE = /-\d{5}-of-\d{5}/;

/** The variant tag of a weight file name (`model.fp16.safetensors`, `x.fp16-00001-of-00002.safetensors`, ...). */
export function variantOf(name: string): string | undefined {
  const m =
    /\.([A-Za-z0-9_]+)(?:-\d+-of-\d+)?\.safetensors$/.exec(name) ??
    /-\d+-of-\d+\.([A-Za-z0-9_]+)\.safetensors$/.exec(name) ??
    /\.safetensors\.index\.([A-Za-z0-9_]+)\.json$/.exec(name) ??
    /\.([A-Za-z0-9_]+)\.safetensors\.index\.json$/.exec(name);
  return m?.[1];
}

function shardsFromIndex(dir: string, indexFile: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(indexFile, "utf8"));
  } catch (e) {
    throw invalid(indexFile, `sharded weight index is not valid JSON (${(e as Error).message})`);
  }
  const map = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== "object" || Array.isArray(map)) throw invalid(indexFile, "has no weight_map object");
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const s of shards) {
    if (typeof s !== "string" || s.includes("/") || s.includes("\\")) throw invalid(indexFile, `weight_map names a bad shard ${JSON.stringify(s)}`);
    if (!existsSync(join(dir, s))) throw invalid(indexFile, `shard ${s} listed in weight_map is missing from ${dir}`);
  }
  return (shards as string[]).sort().map((s) => join(dir, s));
}

/**
 * Finds a diffusers/transformers component's weight files: a sharded `*.safetensors.index[.variant].json` (or
 * `*.variant.safetensors.index.json`) if present, else the single-file `*.safetensors` of that variant. Without
 * `variant` the plain files are used, falling back to fp16 then bf16 when only those exist.
 */
export function findComponentWeightFiles(componentDir: string, opts: { variant?: WeightVariant } = {}): ComponentWeightFiles {
  const dir = resolve(componentDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${dir}: component directory is missing`, { details: { file: dir } });
  }
  const names = readdirSync(dir).sort();
  const pick = (variant: WeightVariant | undefined): ComponentWeightFiles | undefined => {
    const index = names.find((n) => /\.safetensors\.index(\.[A-Za-z0-9_]+)?\.json$/.test(n) && variantOf(n) === variant);
    if (index) return { files: shardsFromIndex(dir, join(dir, index)), variant, index: join(dir, index) };
    const singles = names.filter((n) => n.endsWith(".safetensors") && !SHARD_RE.test(n) && variantOf(n) === variant);
    if (singles.length > 0) return { files: singles.map((n) => join(dir, n)), variant };
    const shards = names.filter((n) => n.endsWith(".safetensors") && SHARD_RE.test(n) && variantOf(n) === variant);
    if (shards.length > 0) {
      throw invalid(dir, `has shards (${shards[0]}, ...) but no *.safetensors.index.json naming them`);
    }
    return undefined;
  };
  const order: (WeightVariant | undefined)[] = opts.variant ? [opts.variant] : [undefined, "fp16", "bf16"];
  for (const v of order) {
    const found = pick(v);
    if (found) return found;
  }
  const present = names.filter((n) => n.endsWith(".safetensors") || n.endsWith(".json") || n.endsWith(".bin"));
  const hint = names.some((n) => n.endsWith(".bin") || n.endsWith(".ckpt") || n.endsWith(".pt"))
    ? " (only pickle weights found; convert them to safetensors)"
    : "";
  throw new EaselError(
    "E_CHECKPOINT_INVALID",
    `${dir}: no ${opts.variant ? `${opts.variant} variant ` : ""}safetensors weights found${hint}; files: ${present.join(", ") || "none"}`,
    { details: { file: dir, variant: opts.variant } },
  );
}

/** The name -> entry map of a component directory's weights (see findComponentWeightFiles for which files). */
export function openComponentWeights(componentDir: string, opts: { variant?: WeightVariant } = {}): Map<string, TensorEntry> {
  return readSafetensorsIndex(findComponentWeightFiles(componentDir, opts).files);
}

/** The raw bytes of one tensor, read from its own byte range (fresh, 8-byte aligned buffer). */
export function readTensorBytes(entry: TensorEntry): Uint8Array {
  const out = new Uint8Array(new ArrayBuffer(entry.byteLength));
  const fd = openSync(entry.file, "r");
  try {
    let done = 0;
    while (done < entry.byteLength) {
      const n = readSync(fd, out, done, entry.byteLength - done, entry.offset + done);
      if (n === 0) throw invalid(entry.file, `tensor "${entry.name}": file ends before its ${entry.byteLength} bytes`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** IEEE half bits -> float32 bits (exact; subnormals, inf and NaN included). */
function halfToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal half: renormalise the mantissa into a normal float32.
  let e = 113;
  let m = mant;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/** Converts raw little-endian bytes of `dtype` to float32 (F16/BF16 exactly; F64/I64 rounded to the nearest float32). */
export function bytesToFloat32(bytes: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const count = bytes.byteLength / DTYPE_SIZE[dtype];
  const aligned = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  const buf = aligned.buffer;
  const off = aligned.byteOffset;
  switch (dtype) {
    case "F32":
      return new Float32Array(buf.slice(off, off + count * 4) as ArrayBuffer);
    case "F16":
    case "BF16": {
      const src = new Uint16Array(buf, off, count);
      const out = new Float32Array(count);
      const bits = new Uint32Array(out.buffer);
      if (dtype === "BF16") for (let i = 0; i < count; i++) bits[i] = src[i] << 16;
      else for (let i = 0; i < count; i++) bits[i] = halfToFloatBits(src[i]);
      return out;
    }
    case "F64":
      return Float32Array.from(new Float64Array(buf, off, count));
    case "I64": {
      const src = new BigInt64Array(buf, off, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = Number(src[i]);
      return out;
    }
    case "I32":
      return Float32Array.from(new Int32Array(buf, off, count));
    case "I16":
      return Float32Array.from(new Int16Array(buf, off, count));
    case "I8":
      return Float32Array.from(new Int8Array(buf, off, count));
    case "U8":
    case "BOOL":
      return Float32Array.from(new Uint8Array(buf, off, count));
  }
}

/** Reads one tensor's values as float32 (upcasting F16/BF16), touching only its byte range. */
export function readTensorData(entry: TensorEntry): Float32Array {
  return bytesToFloat32(readTensorBytes(entry), entry.dtype);
}

/**
 * The bytes a safetensors file starts with, for tensors stored in the given order, each right after the previous
 * one: the header's length (8 bytes, little-endian) and the JSON header, padded with spaces to a multiple of 8 bytes
 * so every tensor starts 8-byte aligned, as the reference writer does. Names are not checked here: the callers know
 * whether theirs can repeat.
 */
export function safetensorsPrefix(
  tensors: Iterable<{ name: string; dtype: string; shape: readonly number[]; byteLength: number }>,
  metadata?: Record<string, string>,
): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let pos = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + t.byteLength] };
    pos += t.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json]);
}

/**
 * Writes a safetensors file. Tensors are stored in the given order, each right after the previous one; the header
 * is padded with spaces to a multiple of 8 bytes so every tensor starts 8-byte aligned, as the reference writer does.
 */
export function writeSafetensors(
  file: string,
  tensors: { name: string; dtype: SafetensorsDtype; shape: number[]; data: Uint8Array }[],
  metadata?: Record<string, string>,
): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === "__metadata__" || seen.has(t.name)) {
      throw new EaselError("E_INPUT_INVALID", `writeSafetensors(${basename(file)}): duplicate or reserved tensor name "${t.name}"`);
    }
    if (!isDtype(t.dtype)) throw new EaselError("E_INPUT_INVALID", `writeSafetensors: tensor "${t.name}" has unknown dtype ${t.dtype}`);
    const expected = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new EaselError(
        "E_INPUT_INVALID",
        `writeSafetensors: tensor "${t.name}" has ${t.data.byteLength} bytes, shape [${t.shape.join(", ")}] of ${t.dtype} needs ${expected}`,
      );
    }
    seen.add(t.name);
  }
  const prefix = safetensorsPrefix(
    tensors.map((t) => ({ ...t, byteLength: t.data.byteLength })),
    metadata,
  );
  const out = Buffer.alloc(prefix.length + tensors.reduce((n, t) => n + t.data.byteLength, 0));
  prefix.copy(out, 0);
  let at = prefix.length;
  for (const t of tensors) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  writeFileSync(file, out);
}
