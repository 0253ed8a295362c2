import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { readRefInts } from "../../tensor/io.ts";
import { basicClean, loadClipTokenizer } from "./clip-tokenizer.ts";

const FIX = "test/fixtures/tokenizer";
const MODELS = "test/fixtures/models";

interface Case {
  model: string;
  tokenizer: string;
  ids: string;
  texts: string[];
}
const { cases } = JSON.parse(readFileSync(`${FIX}/cases.json`, "utf8")) as { cases: Case[] };

describe("CLIP tokenizer against the reference input_ids", () => {
  test("all reference cases are present", () => assert.equal(cases.length, 23));
  for (const c of cases) {
    test(`${c.ids} (${c.model}/${c.tokenizer})`, () => {
      const tok = loadClipTokenizer(join(MODELS, c.model, c.tokenizer));
      const ref = readRefInts(join(FIX, c.ids));
      assert.deepEqual(ref.shape, [c.texts.length, 77]);
      const { ids, truncatedTokens } = tok.encodeBatch(c.texts);
      assert.deepEqual(Array.from(ids), ref.data);
      assert.deepEqual(truncatedTokens, c.texts.map(() => 0));
    });
  }
});

describe("CLIP tokenizer behaviour", () => {
  const tok = loadClipTokenizer(join(MODELS, "sd15/tokenizer"));
  const tok2 = loadClipTokenizer(join(MODELS, "sdxl/tokenizer_2"));

  test("special ids and padding per tokenizer", () => {
    assert.equal(tok.bosId, 628);
    assert.equal(tok.eosId, 629);
    assert.equal(tok.padId, 629);
    assert.equal(tok2.padId, 0);
    assert.equal(tok.maxLength, 77);
  });

  test("empty prompt is bos, eos, pads", () => {
    const e = tok.encodeForModel("");
    assert.deepEqual(Array.from(e.ids.slice(0, 3)), [628, 629, 629]);
    const e2 = tok2.encodeForModel("   ");
    assert.deepEqual(Array.from(e2.ids.slice(0, 3)), [628, 629, 0]);
    assert.equal(e2.ids.length, 77);
  });

  test("long prompts keep 75 tokens with eos last, and report what was dropped", () => {
    const words = Array.from({ length: 100 }, (_, i) => `w${i}`).join(" ");
    const body = tok.encode(words);
    assert.ok(body.length > 75);
    const e = tok.encodeForModel(words);
    assert.equal(e.ids.length, 77);
    assert.equal(e.ids[0], 628);
    assert.equal(e.ids[76], 629);
    assert.deepEqual(Array.from(e.ids.slice(1, 76)), body.slice(0, 75));
    assert.equal(e.truncatedTokens, body.length - 75);
  });

  test("basic cleaning: whitespace, control chars, lowercase, NFC, CJK spacing, accents kept", () => {
    assert.equal(basicClean("  A\tPhoto\n\nOF\u00a0a  Cat "), "a photo of a cat");
    assert.equal(basicClean("zero\u200bwidth\u0000x"), "zerowidthx");
    assert.equal(basicClean("Cafe\u0301 ÉTÉ"), "café été");
    assert.equal(basicClean("猫cat"), "猫 cat");
    assert.equal(basicClean("ΟΔΟΣ"), "οδος");
  });

  test("unicode goes through byte-level BPE (never unknown)", () => {
    const ids = tok.encode("café 猫 🐈");
    assert.ok(ids.length > 0);
    assert.ok(ids.every((i) => i >= 0 && i < 628));
    // Decoding the byte symbols gives the cleaned text back.
    const text = tok.tokenize("café 猫 🐈").join("");
    assert.ok(text.includes("</w>"));
  });

  test("case and whitespace do not change ids", () => {
    assert.deepEqual(tok.encode("A Red  CAR"), tok.encode("a red car"));
  });

  test("special token text is recognised, not split", () => {
    assert.deepEqual(tok.encode("a <|endoftext|> b"), [...tok.encode("a"), 629, ...tok.encode("b")]);
  });

  test("tokenizer_2 treats '!' as its added token id 0, tokenizer as the BPE symbol '!</w>'", () => {
    assert.deepEqual(tok2.encode("wow!"), [...tok2.encode("wow"), 0]);
    assert.deepEqual(tok.encode("!"), [256]);
  });

  test("bad maxLength is rejected", () => {
    assert.throws(() => tok.encodeForModel("a", 1), /maxLength/);
  });
});

describe("loadClipTokenizer file handling", () => {
  const root = mkdtempSync(join(tmpdir(), "easel-tok-"));
  after(() => rmSync(root, { recursive: true, force: true }));

  test("tokenizer.json gives the same ids as vocab.json + merges.txt", () => {
    const src = join(MODELS, "sdxl/tokenizer_2");
    const vocab = JSON.parse(readFileSync(join(src, "vocab.json"), "utf8"));
    const merges = readFileSync(join(src, "merges.txt"), "utf8").split("\n").slice(1).filter(Boolean);
    const dir = join(root, "fast");
    mkdirSync(dir);
    writeFileSync(
      join(dir, "tokenizer.json"),
      JSON.stringify({
        model: { type: "BPE", vocab, merges: merges.map((m) => m.split(" ")) },
        added_tokens: [
          { id: 0, content: "!", special: true },
          { id: 628, content: "<|startoftext|>", special: true },
          { id: 629, content: "<|endoftext|>", special: true },
        ],
      }),
    );
    writeFileSync(join(dir, "tokenizer_config.json"), readFileSync(join(src, "tokenizer_config.json")));
    const a = loadClipTokenizer(dir).encodeForModel("digital art, highly detailed!").ids;
    const b = loadClipTokenizer(src).encodeForModel("digital art, highly detailed!").ids;
    assert.deepEqual(Array.from(a), Array.from(b));
  });

  test("missing files and config are reported with the path", () => {
    const empty = join(root, "empty");
    mkdirSync(empty);
    assert.throws(() => loadClipTokenizer(empty), /empty: tokenizer folder has neither/);
    const noLen = join(root, "nolen");
    mkdirSync(noLen);
    for (const f of ["vocab.json", "merges.txt"]) writeFileSync(join(noLen, f), readFileSync(join(MODELS, "sd15/tokenizer", f)));
    writeFileSync(join(noLen, "tokenizer_config.json"), JSON.stringify({ bos_token: "<|startoftext|>", eos_token: "<|endoftext|>" }));
    assert.throws(() => loadClipTokenizer(noLen), /model_max_length is missing/);
    writeFileSync(join(noLen, "tokenizer_config.json"), "{oops");
    assert.throws(() => loadClipTokenizer(noLen), /tokenizer_config\.json: cannot read tokenizer file/);
  });
});
