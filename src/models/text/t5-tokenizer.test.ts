import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { readRefInts } from "../../tensor/io.ts";
import { loadT5Tokenizer } from "./t5-tokenizer.ts";

const FIX = join(import.meta.dirname, "../../../test/fixtures");
const tok = loadT5Tokenizer(join(FIX, "models/sd3/tokenizer_3"));

describe("T5 tokenizer against the reference input_ids", () => {
  test("modules/sd3/text_encoder_3 (max_length 256)", () => {
    const dir = join(FIX, "modules/sd3/text_encoder_3");
    const { prompt } = JSON.parse(readFileSync(join(dir, "case.json"), "utf8")) as { prompt: string };
    const ref = readRefInts(join(dir, "input_ids"));
    assert.deepEqual(ref.shape, [1, 256]);
    assert.deepEqual(Array.from(tok.encodeForModel(prompt, 256).ids), ref.data);
  });

  test("generate/sd3/txt2img_flow_euler_64x64 input_ids_tokenizer_3 (prompt, negative prompt)", () => {
    const dir = join(FIX, "generate/sd3/txt2img_flow_euler_64x64");
    const c = JSON.parse(readFileSync(join(dir, "case.json"), "utf8")) as { inputs: { prompt: string; negative_prompt: string } };
    const ref = readRefInts(join(dir, "input_ids_tokenizer_3"));
    assert.deepEqual(ref.shape, [2, 256]);
    const got = [...tok.encodeForModel(c.inputs.prompt, 256).ids, ...tok.encodeForModel(c.inputs.negative_prompt, 256).ids];
    assert.deepEqual(got, ref.data);
  });
});

describe("T5 tokenizer against sentencepiece on the same spiece.model", () => {
  // Expected ids: sentencepiece 0.2.2 `SentencePieceProcessor(model_file=spiece.model).encode(text)` (the library
  // transformers' slow T5Tokenizer calls), for texts without added tokens.
  const { cases } = JSON.parse(readFileSync(join(FIX, "modules/sd3/text_encoder_3/sentencepiece-cases.json"), "utf8")) as {
    cases: { text: string; ids: number[] }[];
  };
  for (const c of cases) {
    test(JSON.stringify(c.text.length > 60 ? `${c.text.slice(0, 60)}…` : c.text), () => {
      assert.deepEqual(tok.encode(c.text), c.ids);
    });
  }

  test("long prompt: truncated to max_length - 1 tokens, then </s>; nothing past it", () => {
    const long = cases[cases.length - 1];
    assert.ok(long.ids.length > 256);
    const { ids, truncatedTokens } = tok.encodeForModel(long.text, 256);
    assert.deepEqual(Array.from(ids), [...long.ids.slice(0, 255), 1]);
    assert.equal(truncatedTokens, long.ids.length - 255);
    const short = tok.encodeForModel(long.text, 77);
    assert.deepEqual(Array.from(short.ids), [...long.ids.slice(0, 76), 1]);
  });
});

describe("T5 tokenizer behaviour", () => {
  test("special ids", () => {
    assert.equal(tok.padId, 0);
    assert.equal(tok.eosId, 1);
    assert.equal(tok.unkId, 2);
  });

  test("empty and whitespace-only prompts give only </s> then padding", () => {
    for (const t of ["", "   ", "\t\n"]) assert.deepEqual(Array.from(tok.encodeForModel(t, 4).ids), [1, 0, 0, 0]);
  });

  test("added tokens split the text and keep their ids; sentinels strip the spaces around them", () => {
    const extra0 = 299; // <extra_id_0> (ids count down from 299 in this vocabulary)
    const plain = tok.encode("a hat");
    assert.deepEqual(tok.encode("a hat <extra_id_0> a hat"), [...plain, extra0, ...plain]);
    // "</s>" typed by the user is the eos token, and no second eos is appended after it.
    assert.deepEqual(Array.from(tok.encodeForModel("a hat</s>", 8).ids), [...plain, 1, 0, 0, 0, 0, 0].slice(0, 8));
  });

  test("bad max_sequence_length is rejected by name", () => {
    assert.throws(() => tok.encodeForModel("x", 0), /max_sequence_length must be an integer/);
  });
});
