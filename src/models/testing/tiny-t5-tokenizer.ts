/**
 * A tiny T5 tokenizer folder (SD3's `tokenizer_3`) for the seeded tiny checkpoints: a SentencePiece Unigram
 * `tokenizer.json` the project's T5 tokenizer (./t5-tokenizer.ts) reads, with the slow T5Tokenizer's config files.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Sentinel tokens of the tiny T5 vocabulary (the real one has 100), at the end of the ids like T5's. */
const T5_EXTRA_IDS = 2;
/** Whole words that beat their spelling (score -3.x against -6 per character), so prompts become word tokens. */
const T5_WORDS = ["▁a", "▁an", "▁and", "▁the", "▁of", "▁in", "▁red", "▁cat", "▁dog", "▁astronaut", "▁riding", "▁cinematic", "ing", "er"];

/**
 * A small SentencePiece Unigram vocabulary `[piece, log-probability]` by id: `<pad>` 0, `</s>` 1, `<unk>` 2, the
 * word-boundary piece "▁", every printable ASCII character, a few whole words, then the sentinels `<extra_id_N>`
 * in T5's order (`<extra_id_0>` last).
 */
export function tinyT5Vocab(): [string, number][] {
  const pieces: [string, number][] = [
    ["<pad>", 0],
    ["</s>", 0],
    ["<unk>", 0],
    ["▁", -2],
  ];
  for (let c = 0x21; c <= 0x7e; c++) pieces.push([String.fromCharCode(c), -6]);
  for (const [i, word] of T5_WORDS.entries()) pieces.push([word, -3 - i / 64]);
  for (let i = T5_EXTRA_IDS - 1; i >= 0; i--) pieces.push([`<extra_id_${i}>`, 0]);
  return pieces;
}

/** tokenizer.json (fast Unigram, without the precompiled nmt_nfkc charsmap) + the slow T5Tokenizer's config files. */
export function writeTinyT5Tokenizer(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const vocab = tinyT5Vocab();
  const special = (content: string, strip: boolean) => ({ content, lstrip: strip, normalized: false, rstrip: strip, single_word: false });
  const specialIds: [number, string][] = [
    [0, "<pad>"],
    [1, "</s>"],
    [2, "<unk>"],
  ];
  const sentinels: [number, string][] = [];
  vocab.forEach(([piece], id) => {
    if (piece.startsWith("<extra_id_")) sentinels.push([id, piece]);
  });
  const sentinelNames = sentinels.map(([, p]) => p).sort((a, b) => Number(a.slice(10, -1)) - Number(b.slice(10, -1)));
  const metaspace = { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: true };
  writeJson(join(dir, "tokenizer.json"), {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [...specialIds, ...sentinels].map(([id, content]) => ({ id, ...special(content, false), special: true })),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Strip", strip_left: false, strip_right: true },
        { type: "Replace", pattern: { Regex: " {2,}" }, content: "▁" },
      ],
    },
    pre_tokenizer: metaspace,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "</s>", type_id: 0 } },
        { Sequence: { id: "B", type_id: 0 } },
        { SpecialToken: { id: "</s>", type_id: 0 } },
      ],
      special_tokens: { "</s>": { id: "</s>", ids: [1], tokens: ["</s>"] } },
    },
    decoder: metaspace,
    model: { type: "Unigram", unk_id: 2, vocab, byte_fallback: false },
  });
  const decoder: Record<string, unknown> = {};
  for (const [id, content] of specialIds) decoder[String(id)] = { ...special(content, false), special: true };
  // The slow tokenizer strips the spaces around sentinels (lstrip/rstrip), as T5's published config says.
  for (const [id, content] of sentinels) decoder[String(id)] = { ...special(content, true), special: true };
  writeJson(join(dir, "added_tokens.json"), Object.fromEntries(sentinels.map(([id, p]) => [p, id]).sort()));
  writeJson(join(dir, "tokenizer_config.json"), {
    add_prefix_space: true,
    added_tokens_decoder: decoder,
    additional_special_tokens: sentinelNames,
    clean_up_tokenization_spaces: true,
    eos_token: "</s>",
    extra_ids: T5_EXTRA_IDS,
    legacy: true,
    model_max_length: 512,
    pad_token: "<pad>",
    sp_model_kwargs: {},
    tokenizer_class: "T5Tokenizer",
    unk_token: "<unk>",
  });
  writeJson(join(dir, "special_tokens_map.json"), {
    additional_special_tokens: sentinelNames,
    eos_token: special("</s>", false),
    pad_token: special("<pad>", false),
    unk_token: special("<unk>", false),
  });
}

// Copied from src/models/testing/tiny-checkpoint.ts#writeJson
function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}
