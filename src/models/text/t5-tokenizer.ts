/**
 * The T5 tokenizer of SD3's `tokenizer_3`, reproducing transformers' slow `T5Tokenizer` (SentencePiece Unigram,
 * `legacy: true`) from the folder's `tokenizer.json`:
 * 1. the text is split on added tokens (`<pad>`, `</s>`, `<unk>`, `<extra_id_*>`; longest match first, honouring
 *    each token's lstrip/rstrip), as PreTrainedTokenizer.tokenize does;
 * 2. every other chunk goes through SentencePiece's normaliser: the precompiled charsmap (nmt_nfkc, a darts-clone
 *    double-array trie over UTF-8 bytes, longest rule wins), then leading/trailing whitespace removed, inner runs
 *    collapsed to one, a dummy "▁" prefix, spaces escaped as "▁";
 * 3. Viterbi over the pieces' log-probabilities in float32 (sentencepiece's EncodeOptimized: ties keep the first
 *    candidate found, a character no piece covers becomes `<unk>` scored min_score - 10), runs of unknown
 *    characters merged into one `<unk>` (or, with byte_fallback, spelled as `<0xXX>` byte pieces);
 * 4. `</s>` appended unless already last, truncation keeping `</s>` last, padding with `<pad>`.
 * The fast tokenizer's normaliser in tokenizer.json (Strip + Replace) differs from SentencePiece on leading and
 * repeated spaces; the pipelines' reference output is the slow one, so that is what is implemented.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parsePythonJson } from "../../checkpoint/python-json.ts";
import { EaselError } from "../../core/errors.ts";

export interface T5AddedToken {
  content: string;
  id: number;
  lstrip: boolean;
  rstrip: boolean;
}

export interface T5TokenizerFiles {
  /** Unigram pieces `[piece, log-probability]`, index = id. */
  pieces: [string, number][];
  unkId: number;
  byteFallback: boolean;
  /** SentencePiece precompiled charsmap (nmt_nfkc), or undefined for no character normalisation. */
  charsmap?: Uint8Array;
  addedTokens: T5AddedToken[];
  eosToken: string;
  padToken: string;
  /** `model_max_length` of tokenizer_config.json (informational; SD3 pipelines pass max_sequence_length). */
  modelMaxLength: number;
}

/** darts-clone DoubleArray::commonPrefixSearch over the charsmap trie: the longest rule matching at `pos`. */
class CharsMap {
  private readonly units: Uint32Array;
  private readonly pool: Uint8Array;
  private readonly cache = new Map<number, Uint8Array>();

  constructor(blob: Uint8Array) {
    if (blob.length < 4) throw new EaselError("E_CHECKPOINT_INVALID", "tokenizer.json: precompiled_charsmap is truncated");
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = view.getUint32(0, true);
    if (trieSize % 4 !== 0 || 4 + trieSize > blob.length) {
      throw new EaselError("E_CHECKPOINT_INVALID", `tokenizer.json: precompiled_charsmap trie size ${trieSize} is invalid`);
    }
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + 4 * i, true);
    this.pool = blob.subarray(4 + trieSize);
  }

  private static offset(u: number): number {
    return (u >>> 10) << ((u & (1 << 9)) >>> 6);
  }

  /** [matched byte length, replacement bytes] of the longest rule at bytes[pos..], or undefined. */
  match(bytes: Uint8Array, pos: number): [number, Uint8Array] | undefined {
    const units = this.units;
    if (units.length === 0) return undefined;
    let node = CharsMap.offset(units[0]);
    let best = 0;
    let value = 0;
    for (let i = pos; i < bytes.length; i++) {
      const c = bytes[i];
      node ^= c;
      if (node >= units.length) break;
      const u = units[node];
      if ((u & 0x800000ff) >>> 0 !== c) break; // label
      node ^= CharsMap.offset(u);
      if ((u >>> 8) & 1) {
        best = i + 1 - pos;
        value = units[node] & 0x7fffffff;
      }
    }
    if (best === 0) return undefined;
    let out = this.cache.get(value);
    if (!out) {
      let end = value;
      while (end < this.pool.length && this.pool[end] !== 0) end++;
      out = this.pool.subarray(value, end);
      this.cache.set(value, out);
    }
    return [best, out];
  }
}

/** Byte length of the UTF-8 character starting with byte `b` (1 for a stray continuation byte). */
function utf8Len(b: number): number {
  if (b < 0x80) return 1;
  if (b >= 0xf0) return 4;
  if (b >= 0xe0) return 3;
  if (b >= 0xc0) return 2;
  return 1;
}

const SPACE = 0x20;

export class T5Tokenizer {
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly modelMaxLength: number;
  private readonly pieceIds = new Map<string, number>();
  private readonly scores: Float32Array;
  private readonly maxPieceChars: number;
  private readonly unkScore: number;
  private readonly byteFallback: boolean;
  private readonly charsmap?: CharsMap;
  /** Longest first, so the split prefers the longest added token at a position. */
  private readonly added: T5AddedToken[];
  private readonly utf8 = new TextEncoder();
  private readonly utf8Decoder = new TextDecoder();

  constructor(files: T5TokenizerFiles) {
    const addedIds = new Set(files.addedTokens.map((t) => t.id));
    this.scores = Float32Array.from(files.pieces, ([, s]) => s);
    let maxChars = 1;
    let minScore = Number.POSITIVE_INFINITY;
    files.pieces.forEach(([piece, score], id) => {
      // Added tokens (control symbols, sentinels) are not SentencePiece pieces: they never come out of the Viterbi.
      if (addedIds.has(id) || id === files.unkId || piece.length === 0) return;
      if (!this.pieceIds.has(piece)) this.pieceIds.set(piece, id);
      maxChars = Math.max(maxChars, [...piece].length);
      minScore = Math.min(minScore, score);
    });
    if (this.pieceIds.size === 0) throw new EaselError("E_CHECKPOINT_INVALID", "tokenizer.json: the Unigram model has no pieces");
    this.maxPieceChars = maxChars;
    this.unkScore = Math.fround(Math.fround(minScore) - 10);
    this.byteFallback = files.byteFallback;
    this.charsmap = files.charsmap ? new CharsMap(files.charsmap) : undefined;
    this.added = [...files.addedTokens].filter((t) => t.content.length > 0).sort((a, b) => b.content.length - a.content.length);
    const idOf = (field: string, token: string): number => {
      const id = this.added.find((t) => t.content === token)?.id ?? this.pieceIds.get(token) ?? files.pieces.findIndex(([p]) => p === token);
      if (id === undefined || id < 0) throw new EaselError("E_CHECKPOINT_INVALID", `tokenizer: ${field} "${token}" is not in the vocabulary`);
      return id;
    };
    this.eosId = idOf("eos_token", files.eosToken);
    this.padId = idOf("pad_token", files.padToken);
    if (!Number.isInteger(files.unkId) || files.unkId < 0 || files.unkId >= files.pieces.length) {
      throw new EaselError("E_CHECKPOINT_INVALID", `tokenizer.json: unk_id ${files.unkId} is not a piece id`);
    }
    this.unkId = files.unkId;
    this.modelMaxLength = files.modelMaxLength;
  }

  /** SentencePiece's Normalizer::Normalize (nmt_nfkc + whitespace rules); returns the "▁"-escaped string. */
  normalize(text: string): string {
    const input = this.utf8.encode(text);
    const out: number[] = [];
    let pos = 0;
    const next = (): Uint8Array => {
      const m = this.charsmap?.match(input, pos);
      if (m) {
        pos += m[0];
        return m[1];
      }
      const len = Math.min(utf8Len(input[pos]), input.length - pos);
      const s = input.subarray(pos, pos + len);
      pos += len;
      return s;
    };
    // Leading whitespace is dropped (remove_extra_whitespaces).
    let first: Uint8Array | undefined;
    while (pos < input.length) {
      const s = next();
      if (!(s.length === 1 && s[0] === SPACE)) {
        first = s;
        break;
      }
    }
    if (first === undefined) return "";
    const spaceBytes = [0xe2, 0x96, 0x81]; // "▁"
    out.push(...spaceBytes); // add_dummy_prefix
    let prevSpace = true;
    let piece: Uint8Array | undefined = first;
    while (piece !== undefined) {
      let start = 0;
      if (prevSpace) while (start < piece.length && piece[start] === SPACE) start++;
      if (start < piece.length) {
        for (let k = start; k < piece.length; k++) {
          if (piece[k] === SPACE) out.push(...spaceBytes);
          else out.push(piece[k]);
        }
        prevSpace = piece[piece.length - 1] === SPACE;
      }
      piece = pos < input.length ? next() : undefined;
    }
    let end = out.length;
    while (end >= 3 && out[end - 3] === 0xe2 && out[end - 2] === 0x96 && out[end - 1] === 0x81) end -= 3;
    return this.utf8Decoder.decode(Uint8Array.from(out.slice(0, end)));
  }

  /** Unigram Viterbi over a normalized string; returns ids with unknown runs merged (or byte pieces). */
  private viterbi(normalized: string): number[] {
    const chars = Array.from(normalized);
    const n = chars.length;
    const bestScore = new Float32Array(n + 1);
    const startsAt = new Int32Array(n + 1).fill(-1);
    const bestId = new Int32Array(n + 1).fill(-1);
    for (let s = 0; s < n; s++) {
      if (s > 0 && startsAt[s] === -1) continue; // unreachable (cannot happen: every char has a piece or unk)
      const base = bestScore[s];
      let piece = "";
      let single = false;
      for (let e = s + 1; e <= Math.min(n, s + this.maxPieceChars); e++) {
        piece += chars[e - 1];
        const id = this.pieceIds.get(piece);
        if (id === undefined) continue;
        const cand = Math.fround(this.scores[id] + base);
        if (startsAt[e] === -1 || cand > bestScore[e]) {
          bestScore[e] = cand;
          startsAt[e] = s;
          bestId[e] = id;
        }
        if (e === s + 1) single = true;
      }
      if (!single) {
        const cand = Math.fround(this.unkScore + base);
        if (startsAt[s + 1] === -1 || cand > bestScore[s + 1]) {
          bestScore[s + 1] = cand;
          startsAt[s + 1] = s;
          bestId[s + 1] = this.unkId;
        }
      }
    }
    const path: { id: number; text: string }[] = [];
    for (let e = n; e > 0; e = startsAt[e]) path.push({ id: bestId[e], text: chars.slice(startsAt[e], e).join("") });
    path.reverse();
    const ids: number[] = [];
    let prevUnk = false;
    for (const p of path) {
      const unk = p.id === this.unkId;
      if (unk && this.byteFallback) {
        for (const b of this.utf8.encode(p.text)) {
          const id = this.pieceIds.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
          ids.push(id ?? this.unkId);
        }
        prevUnk = false;
        continue;
      }
      if (!(unk && prevUnk)) ids.push(p.id);
      prevUnk = unk;
    }
    return ids;
  }

  /** Splits on added tokens as the slow tokenizer does: [text chunk | added token id]. */
  private splitAdded(text: string): (string | number)[] {
    const parts: (string | number)[] = [];
    let chunk = "";
    let i = 0;
    let stripNext = false;
    while (i < text.length) {
      const tok = this.added.find((t) => text.startsWith(t.content, i));
      if (!tok) {
        chunk += text[i++];
        continue;
      }
      if (stripNext) chunk = chunk.trimStart();
      if (tok.lstrip) chunk = chunk.trimEnd();
      if (chunk) parts.push(chunk);
      parts.push(tok.id);
      chunk = "";
      stripNext = tok.rstrip;
      i += tok.content.length;
    }
    if (stripNext) chunk = chunk.trimStart();
    if (chunk) parts.push(chunk);
    return parts;
  }

  /** Token ids of `text` without `</s>` or padding. */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const part of this.splitAdded(text)) {
      if (typeof part === "number") ids.push(part);
      else ids.push(...this.viterbi(this.normalize(part)));
    }
    return ids;
  }

  /**
   * `tokenizer(text, padding="max_length", max_length, truncation=True, add_special_tokens=True)` input_ids:
   * tokens truncated to maxLength - 1, `</s>` (unless the text already ends with it), `<pad>` up to maxLength.
   */
  encodeForModel(text: string, maxLength: number): { ids: Int32Array; truncatedTokens: number } {
    if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > 100_000) {
      throw new EaselError("E_INPUT_INVALID", `max_sequence_length must be an integer in [1, 100000], got ${maxLength}`, {
        param: "max_sequence_length",
      });
    }
    const body = this.encode(text);
    const keep = Math.min(body.length, maxLength - 1);
    const ids = new Int32Array(maxLength).fill(this.padId);
    for (let i = 0; i < keep; i++) ids[i] = body[i];
    if (!(keep > 0 && body[keep - 1] === this.eosId)) ids[keep] = this.eosId;
    return { ids, truncatedTokens: body.length - keep };
  }
}

function readJson(file: string): Record<string, unknown> {
  try {
    // Python's json dialect (Infinity / -Infinity / NaN), as transformers writes tokenizer configs.
    return parsePythonJson(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: cannot read tokenizer file (${(e as Error).message})`, { details: { file }, cause: e });
  }
}

function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return undefined;
}

/** The Precompiled normaliser's charsmap, directly or inside a Sequence. */
function findCharsmap(normalizer: unknown): Uint8Array | undefined {
  if (!normalizer || typeof normalizer !== "object") return undefined;
  const n = normalizer as { type?: string; precompiled_charsmap?: unknown; normalizers?: unknown[] };
  if (n.type === "Precompiled" && typeof n.precompiled_charsmap === "string") return new Uint8Array(Buffer.from(n.precompiled_charsmap, "base64"));
  if (n.type === "Sequence" && Array.isArray(n.normalizers)) {
    for (const c of n.normalizers) {
      const m = findCharsmap(c);
      if (m) return m;
    }
  }
  return undefined;
}

/** Loads a T5 tokenizer folder (`tokenizer.json` with a Unigram model, plus tokenizer_config / special_tokens_map). */
export function loadT5Tokenizer(dir: string): T5Tokenizer {
  const file = join(dir, "tokenizer.json");
  if (!existsSync(file)) {
    throw new EaselError(
      "E_NOT_SUPPORTED",
      `${dir}: tokenizer.json is missing; a T5 tokenizer folder with only spiece.model is not supported (save it with a fast tokenizer to get tokenizer.json)`,
      { details: { dir } },
    );
  }
  const tj = readJson(file) as { model?: { type?: string; vocab?: unknown; unk_id?: unknown; byte_fallback?: unknown }; added_tokens?: unknown; normalizer?: unknown };
  const model = tj.model;
  if (model?.type !== "Unigram" || !Array.isArray(model.vocab)) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: not a Unigram tokenizer (model.type ${JSON.stringify(model?.type)})`);
  }
  const pieces = model.vocab as [string, number][];
  for (const [i, p] of pieces.entries()) {
    if (!Array.isArray(p) || typeof p[0] !== "string" || typeof p[1] !== "number") {
      throw new EaselError("E_CHECKPOINT_INVALID", `${file}: model.vocab[${i}] is not [piece, score]`);
    }
  }
  const addedTokens: T5AddedToken[] = [];
  if (Array.isArray(tj.added_tokens)) {
    for (const t of tj.added_tokens as Record<string, unknown>[]) {
      if (typeof t.content === "string" && typeof t.id === "number") {
        addedTokens.push({ content: t.content, id: t.id, lstrip: t.lstrip === true, rstrip: t.rstrip === true });
      }
    }
  }
  // The slow tokenizer's flags (tokenizer_config.json added_tokens_decoder) win over tokenizer.json's.
  const configFile = join(dir, "tokenizer_config.json");
  const config = existsSync(configFile) ? readJson(configFile) : {};
  const decoder = (config.added_tokens_decoder ?? {}) as Record<string, Record<string, unknown>>;
  for (const [id, t] of Object.entries(decoder)) {
    const existing = addedTokens.find((a) => a.id === Number(id));
    const entry = { content: String(t.content), id: Number(id), lstrip: t.lstrip === true, rstrip: t.rstrip === true };
    if (existing) Object.assign(existing, entry);
    else addedTokens.push(entry);
  }
  const mapFile = join(dir, "special_tokens_map.json");
  const specials = existsSync(mapFile) ? readJson(mapFile) : {};
  const special = (key: string, fallback: string) => tokenText(specials[key]) ?? tokenText(config[key]) ?? fallback;
  const unkId = typeof model.unk_id === "number" ? model.unk_id : 2;
  const maxLen = typeof config.model_max_length === "number" && config.model_max_length < 1e9 ? config.model_max_length : 512;
  return new T5Tokenizer({
    pieces,
    unkId,
    byteFallback: model.byte_fallback === true,
    charsmap: findCharsmap(tj.normalizer),
    addedTokens,
    eosToken: special("eos_token", "</s>"),
    padToken: special("pad_token", "<pad>"),
    modelMaxLength: maxLen,
  });
}
