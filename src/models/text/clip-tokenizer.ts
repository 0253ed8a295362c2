/**
 * CLIP byte-level BPE tokenizer, reproducing transformers' slow `CLIPTokenizer` as diffusers pipelines run it
 * without `ftfy`: added-token split (special tokens, and `!` in SDXL/SD3 `tokenizer_2`), BERT-style basic
 * tokenizer (control characters removed, whitespace -> space, CJK ideographs spaced, NFC, per-word lowercase,
 * accents kept), the CLIP regex, GPT-2 byte-to-unicode mapping, BPE with `</w>` on the last symbol, then
 * `[bos] + ids[:max-2] + [eos]` padded to `model_max_length` with the tokenizer's own pad token.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parsePythonJson } from "../../checkpoint/python-json.ts";
import { EaselError } from "../../core/errors.ts";

export interface ClipTokenizerFiles {
  /** token -> id (vocab.json, or tokenizer.json `model.vocab`). */
  vocab: Record<string, number>;
  /** Merge rules in rank order, each "a b" (merges.txt without its `#version` line). */
  merges: string[];
  /** Tokens matched verbatim before BPE (id given): special tokens and `added_tokens_decoder` entries. */
  addedTokens?: { content: string; id: number }[];
  bosToken?: string;
  eosToken?: string;
  padToken?: string;
  unkToken?: string;
  modelMaxLength: number;
}

export interface ClipEncoding {
  /** `[maxLength]` ids: bos, tokens, eos, pads. */
  ids: Int32Array;
  /** How many prompt tokens (between bos and eos) were dropped to fit. */
  truncatedTokens: number;
}

/** GPT-2's reversible byte -> printable unicode character table. */
function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return table;
}

function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

const CONTROL = /^\p{C}$/u;
const SPACE_SEP = /^\p{Zs}$/u;

/** transformers' BasicTokenizer(strip_accents=False, do_split_on_punc=False), then " ".join. */
export function basicClean(text: string): string {
  let cleaned = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r" || SPACE_SEP.test(ch)) cleaned += " ";
    else if (cp === 0 || cp === 0xfffd || CONTROL.test(ch)) continue;
    else if (isCjk(cp)) cleaned += ` ${ch} `;
    else cleaned += ch;
  }
  return cleaned
    .normalize("NFC")
    .split(/\s+/u)
    .filter((w) => w.length > 0)
    .map((w) => w.toLowerCase())
    .join(" ");
}

const CLIP_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;

export class ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly maxLength: number;
  private readonly vocab: Map<string, number>;
  private readonly ranks = new Map<string, number>();
  private readonly added: { content: string; id: number }[];
  private readonly byteChars = bytesToUnicode();
  private readonly cache = new Map<string, string[]>();
  private readonly utf8 = new TextEncoder();

  constructor(files: ClipTokenizerFiles) {
    this.vocab = new Map(Object.entries(files.vocab));
    files.merges.forEach((m, i) => {
      const parts = m.split(" ");
      if (parts.length !== 2) throw new EaselError("E_CHECKPOINT_INVALID", `merges: rule ${i + 1} "${m}" is not two symbols`);
      if (!this.ranks.has(m)) this.ranks.set(m, i);
    });
    // Longest first, so the added-token split prefers the longest match at a position.
    this.added = [...(files.addedTokens ?? [])].filter((t) => t.content.length > 0).sort((a, b) => b.content.length - a.content.length);
    const idOf = (field: string, token: string | undefined): number => {
      if (token === undefined) throw new EaselError("E_CHECKPOINT_INVALID", `tokenizer: ${field} is not configured`);
      const id = this.tokenId(token);
      if (id === undefined) throw new EaselError("E_CHECKPOINT_INVALID", `tokenizer: ${field} "${token}" is not in the vocabulary`);
      return id;
    };
    this.bosId = idOf("bos_token", files.bosToken);
    this.eosId = idOf("eos_token", files.eosToken);
    this.padId = idOf("pad_token", files.padToken ?? files.eosToken);
    this.unkId = idOf("unk_token", files.unkToken ?? files.eosToken);
    if (!Number.isInteger(files.modelMaxLength) || files.modelMaxLength < 2 || files.modelMaxLength > 100_000) {
      throw new EaselError("E_CHECKPOINT_INVALID", `tokenizer: model_max_length ${files.modelMaxLength} is not an integer in [2, 100000]`);
    }
    this.maxLength = files.modelMaxLength;
  }

  private tokenId(token: string): number | undefined {
    return this.added.find((t) => t.content === token)?.id ?? this.vocab.get(token);
  }

  /** BPE of one pre-token already mapped to byte characters; returns the symbols. */
  private bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    const chars = Array.from(token);
    let word = [...chars.slice(0, -1), `${chars[chars.length - 1]}</w>`];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best];
      const second = word[best + 1];
      // Merge every non-overlapping occurrence of the pair, left to right.
      const next: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          next.push(first + second);
          i++;
        } else next.push(word[i]);
      }
      word = next;
    }
    this.cache.set(token, word);
    return word;
  }

  /** Splits on added tokens (exact, case-sensitive), as the slow tokenizer's trie does. */
  private splitAdded(text: string): (string | { id: number })[] {
    const out: (string | { id: number })[] = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const hit = this.added.find((t) => text.startsWith(t.content, i));
      if (hit) {
        if (i > start) out.push(text.slice(start, i));
        out.push({ id: hit.id });
        i += hit.content.length;
        start = i;
      } else i++;
    }
    if (start < text.length) out.push(text.slice(start));
    return out;
  }

  /** BPE token strings of `text` (no bos/eos), for inspection and tests. */
  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const piece of this.splitAdded(text)) {
      if (typeof piece !== "string") {
        out.push(this.added.find((t) => t.id === piece.id)!.content);
        continue;
      }
      for (const m of basicClean(piece).matchAll(CLIP_PATTERN)) {
        const mapped = Array.from(this.utf8.encode(m[0]), (b) => this.byteChars[b]).join("");
        out.push(...this.bpe(mapped));
      }
    }
    return out;
  }

  /** Token ids of `text` without bos/eos/padding or truncation. */
  encode(text: string): number[] {
    return this.tokenize(text).map((t) => this.tokenId(t) ?? this.unkId);
  }

  /** `tokenizer(text, padding="max_length", max_length, truncation=True)` input_ids for one prompt. */
  encodeForModel(text: string, maxLength: number = this.maxLength): ClipEncoding {
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new EaselError("E_INPUT_INVALID", `maxLength must be an integer >= 2 (got ${maxLength})`, { param: "maxLength" });
    }
    const body = this.encode(text);
    const keep = Math.min(body.length, maxLength - 2);
    const ids = new Int32Array(maxLength).fill(this.padId);
    ids[0] = this.bosId;
    for (let i = 0; i < keep; i++) ids[1 + i] = body[i];
    ids[1 + keep] = this.eosId;
    return { ids, truncatedTokens: body.length - keep };
  }

  /** Several prompts as one `[texts.length, maxLength]` batch. */
  encodeBatch(texts: readonly string[], maxLength: number = this.maxLength): { ids: Int32Array; truncatedTokens: number[] } {
    const ids = new Int32Array(texts.length * maxLength);
    const truncatedTokens = texts.map((t, b) => {
      const e = this.encodeForModel(t, maxLength);
      ids.set(e.ids, b * maxLength);
      return e.truncatedTokens;
    });
    return { ids, truncatedTokens };
  }
}

function readJson(file: string): unknown {
  try {
    // Python's json dialect (Infinity / -Infinity / NaN), as transformers writes tokenizer configs.
    return parsePythonJson(readFileSync(file, "utf8"));
  } catch (e) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: cannot read tokenizer file (${(e as Error).message})`, {
      details: { file },
      cause: e,
    });
  }
}

/** A special-token value: a string, or an AddedToken object `{content, ...}`. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return undefined;
}

/**
 * Loads a tokenizer folder: `vocab.json` + `merges.txt`, or `tokenizer.json` (BPE model) when those are absent,
 * plus `tokenizer_config.json` / `special_tokens_map.json` (the latter wins, as in transformers).
 */
export function loadClipTokenizer(dir: string): ClipTokenizer {
  const configFile = join(dir, "tokenizer_config.json");
  const config = (existsSync(configFile) ? readJson(configFile) : {}) as Record<string, unknown>;
  const mapFile = join(dir, "special_tokens_map.json");
  const specials = (existsSync(mapFile) ? readJson(mapFile) : {}) as Record<string, unknown>;
  const special = (key: string) => tokenText(specials[key]) ?? tokenText(config[key]);

  let vocab: Record<string, number>;
  let merges: string[];
  const added: { content: string; id: number }[] = [];
  if (existsSync(join(dir, "vocab.json")) && existsSync(join(dir, "merges.txt"))) {
    vocab = readJson(join(dir, "vocab.json")) as Record<string, number>;
    const lines = readFileSync(join(dir, "merges.txt"), "utf8").split("\n");
    merges = lines.filter((l, i) => l.trim().length > 0 && !(i === 0 && l.startsWith("#version")));
  } else if (existsSync(join(dir, "tokenizer.json"))) {
    const file = join(dir, "tokenizer.json");
    const tj = readJson(file) as { model?: { type?: string; vocab?: unknown; merges?: unknown }; added_tokens?: unknown };
    if (tj.model?.type !== "BPE" || !tj.model.vocab || !Array.isArray(tj.model.merges)) {
      throw new EaselError("E_CHECKPOINT_INVALID", `${file}: not a BPE tokenizer (model.type ${JSON.stringify(tj.model?.type)})`);
    }
    vocab = tj.model.vocab as Record<string, number>;
    merges = (tj.model.merges as unknown[]).map((m) => (Array.isArray(m) ? m.join(" ") : String(m)));
    if (Array.isArray(tj.added_tokens)) {
      for (const t of tj.added_tokens as { id?: unknown; content?: unknown }[]) {
        if (typeof t.id === "number" && typeof t.content === "string") added.push({ id: t.id, content: t.content });
      }
    }
  } else {
    throw new EaselError("E_CHECKPOINT_INVALID", `${dir}: tokenizer folder has neither vocab.json + merges.txt nor tokenizer.json`, {
      details: { file: dir },
    });
  }
  if (vocab === null || typeof vocab !== "object") throw new EaselError("E_CHECKPOINT_INVALID", `${dir}: vocabulary is not an object`);

  const decoder = config.added_tokens_decoder;
  if (decoder && typeof decoder === "object") {
    for (const [id, v] of Object.entries(decoder as Record<string, unknown>)) {
      const content = tokenText(v);
      if (content !== undefined && !added.some((a) => a.content === content)) added.push({ id: Number(id), content });
    }
  }
  const addedFile = join(dir, "added_tokens.json");
  if (existsSync(addedFile)) {
    for (const [content, id] of Object.entries(readJson(addedFile) as Record<string, number>)) {
      if (!added.some((a) => a.content === content)) added.push({ id, content });
    }
  }
  // Special tokens are never split by BPE even when no added-token table lists them.
  for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
    const content = special(key);
    const id = content === undefined ? undefined : vocab[content];
    if (content !== undefined && id !== undefined && !added.some((a) => a.content === content)) added.push({ id, content });
  }

  const maxLen = config.model_max_length;
  if (typeof maxLen !== "number") {
    throw new EaselError("E_CHECKPOINT_INVALID", `${configFile}: model_max_length is missing (CLIP text encoders take 77)`, {
      details: { file: configFile },
    });
  }
  return new ClipTokenizer({
    vocab,
    merges,
    addedTokens: added,
    bosToken: special("bos_token"),
    eosToken: special("eos_token"),
    padToken: special("pad_token"),
    unkToken: special("unk_token"),
    modelMaxLength: maxLen,
  });
}
