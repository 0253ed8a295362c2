import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isEaselError } from "../core/errors.ts";
import {
  bytesToFloat32,
  findComponentWeightFiles,
  openComponentWeights,
  readSafetensorsHeader,
  readSafetensorsIndex,
  readTensorData,
  writeSafetensors,
} from "./safetensors.ts";

const root = mkdtempSync(join(tmpdir(), "easel-st-"));
after(() => rmSync(root, { recursive: true, force: true }));

const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const u16 = (xs: number[]) => new Uint8Array(new Uint16Array(xs).buffer);

/** Hand-assembled file: 8-byte length + header text + data, to craft broken headers. */
function rawFile(name: string, header: string | object, data: Uint8Array = new Uint8Array(0), lenOverride?: bigint): string {
  const text = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(text.length));
  const p = join(root, name);
  writeFileSync(p, Buffer.concat([len, text, data]));
  return p;
}

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isEaselError(e), `expected EaselError, got ${e}`);
    assert.equal(e.code, "E_CHECKPOINT_INVALID");
    assert.match(e.message, pattern);
    return true;
  });
}

describe("writeSafetensors + readSafetensorsIndex", () => {
  test("round-trips names, dtypes, shapes, metadata and values", () => {
    const p = join(root, "rt.safetensors");
    writeSafetensors(
      p,
      [
        { name: "a.weight", dtype: "F32", shape: [2, 3], data: f32([1, 2, 3, 4, 5, -6.5]) },
        { name: "b", dtype: "F16", shape: [3], data: u16([0x3c00, 0xc000, 0x0001]) }, // 1, -2, smallest subnormal
        { name: "c", dtype: "BF16", shape: [2], data: u16([0x3f80, 0x4049]) }, // 1, 3.140625
        { name: "d", dtype: "I64", shape: [2], data: new Uint8Array(new BigInt64Array([7n, -3n]).buffer) },
      ],
      { format: "pt" },
    );
    const bytes = readFileSync(p);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0, "header padded to 8 bytes");
    const { metadata, entries } = readSafetensorsHeader(p);
    assert.deepEqual(metadata, { format: "pt" });
    assert.equal(entries.length, 4);
    const idx = readSafetensorsIndex([p]);
    const a = idx.get("a.weight")!;
    assert.deepEqual(a.shape, [2, 3]);
    assert.equal(a.offset, 8 + n);
    assert.equal(a.byteLength, 24);
    assert.deepEqual([...readTensorData(a)], [1, 2, 3, 4, 5, -6.5]);
    assert.deepEqual([...readTensorData(idx.get("b")!)], [1, -2, 2 ** -24]);
    assert.deepEqual([...readTensorData(idx.get("c")!)], [1, 3.140625]);
    assert.deepEqual([...readTensorData(idx.get("d")!)], [7, -3]);
  });

  test("f16 special values convert exactly", () => {
    const out = bytesToFloat32(u16([0x7c00, 0xfc00, 0x7bff, 0x0400, 0x03ff, 0x8000]), "F16");
    assert.deepEqual([...out], [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 65504, 2 ** -14, 1023 * 2 ** -24, -0]);
    assert.ok(Number.isNaN(bytesToFloat32(u16([0x7e00]), "F16")[0]));
  });

  test("writer rejects data of the wrong size", () => {
    assert.throws(() => writeSafetensors(join(root, "x.safetensors"), [{ name: "a", dtype: "F32", shape: [2], data: f32([1]) }]), /needs 8/);
  });

  test("duplicate names across shards are rejected", () => {
    const p1 = join(root, "dup1.safetensors");
    const p2 = join(root, "dup2.safetensors");
    writeSafetensors(p1, [{ name: "a", dtype: "F32", shape: [1], data: f32([1]) }]);
    writeSafetensors(p2, [{ name: "a", dtype: "F32", shape: [1], data: f32([2]) }]);
    rejects(() => readSafetensorsIndex([p1, p2]), /tensor "a" is also in .*dup1/);
  });
});

describe("header validation", () => {
  const ok = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  test("a valid hand-made file reads", () => {
    const p = rawFile("ok.safetensors", ok, f32([1, 2]));
    assert.deepEqual([...readTensorData(readSafetensorsIndex([p]).get("a")!)], [1, 2]);
  });
  test("too short", () => {
    const p = join(root, "short.safetensors");
    writeFileSync(p, Buffer.from([1, 2, 3]));
    rejects(() => readSafetensorsIndex([p]), /short\.safetensors: file is 3 bytes/);
  });
  test("absurd header length", () => {
    rejects(() => readSafetensorsIndex([rawFile("huge.safetensors", ok, f32([1, 2]), 1n << 40n)]), /header length/);
  });
  test("header length past end of file", () => {
    rejects(() => readSafetensorsIndex([rawFile("past.safetensors", ok, new Uint8Array(0), 5000n)]), /runs past the end/);
  });
  test("invalid JSON", () => {
    rejects(() => readSafetensorsIndex([rawFile("badjson.safetensors", "{not json", f32([1]))]), /badjson.*not valid JSON/);
  });
  test("non-object header", () => {
    rejects(() => readSafetensorsIndex([rawFile("arr.safetensors", "[1,2]")]), /not a JSON object/);
  });
  test("unknown dtype", () => {
    const h = { a: { dtype: "F8_E4M3", shape: [1], data_offsets: [0, 1] } };
    rejects(() => readSafetensorsIndex([rawFile("dt.safetensors", h, new Uint8Array(1))]), /"a": unsupported dtype "F8_E4M3"/);
  });
  test("bad shape", () => {
    const h = { a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } };
    rejects(() => readSafetensorsIndex([rawFile("shape.safetensors", h, f32([1]))]), /shape \[-1\]/);
  });
  test("offsets reversed", () => {
    const h = { a: { dtype: "F32", shape: [1], data_offsets: [4, 0] } };
    rejects(() => readSafetensorsIndex([rawFile("rev.safetensors", h, f32([1, 2]))]), /data_offsets/);
  });
  test("byte length does not match shape", () => {
    const h = { a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } };
    rejects(() => readSafetensorsIndex([rawFile("len.safetensors", h, f32([1, 2]))]), /8 data bytes, but shape \[3\] of F32 needs 12/);
  });
  test("truncated data", () => {
    rejects(() => readSafetensorsIndex([rawFile("trunc.safetensors", ok, f32([1]))]), /trunc\.safetensors: .*run past the 4 data bytes/);
  });
  test("overlapping tensors", () => {
    const h = {
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    };
    rejects(() => readSafetensorsIndex([rawFile("overlap.safetensors", h, f32([1, 2, 3]))]), /overlapping/);
  });
  test("bad metadata", () => {
    const h = { __metadata__: { a: 1 }, ...ok };
    rejects(() => readSafetensorsIndex([rawFile("meta.safetensors", h, f32([1, 2]))]), /__metadata__\.a is not a string/);
  });
  test("missing file", () => {
    rejects(() => readSafetensorsIndex([join(root, "nope.safetensors")]), /nope\.safetensors: cannot open/);
  });
});

describe("openComponentWeights", () => {
  const mk = (dir: string, file: string, name: string, value: number) => {
    mkdirSync(join(root, dir), { recursive: true });
    writeSafetensors(join(root, dir, file), [{ name, dtype: "F32", shape: [1], data: f32([value]) }]);
  };

  test("prefers plain files, picks variants on request, falls back to fp16 when alone", () => {
    mk("c1", "model.safetensors", "w", 1);
    writeSafetensors(join(root, "c1", "model.fp16.safetensors"), [{ name: "w", dtype: "F16", shape: [1], data: u16([0x4000]) }]);
    assert.equal(readTensorData(openComponentWeights(join(root, "c1")).get("w")!)[0], 1);
    assert.equal(readTensorData(openComponentWeights(join(root, "c1"), { variant: "fp16" }).get("w")!)[0], 2);
    rejects(() => openComponentWeights(join(root, "c1"), { variant: "bf16" }), /no bf16 variant safetensors weights/);

    mk("c2", "diffusion_pytorch_model.fp16.safetensors", "w", 3);
    const found = findComponentWeightFiles(join(root, "c2"));
    assert.equal(found.variant, "fp16");
    assert.equal(readTensorData(openComponentWeights(join(root, "c2")).get("w")!)[0], 3);
  });

  test("sharded index (plain and fp16 naming)", () => {
    mk("c3", "model-00001-of-00002.safetensors", "a", 1);
    mk("c3", "model-00002-of-00002.safetensors", "b", 2);
    writeFileSync(
      join(root, "c3", "model.safetensors.index.json"),
      JSON.stringify({ metadata: {}, weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } }),
    );
    mk("c3", "model.fp16-00001-of-00001.safetensors", "a", 5);
    writeFileSync(
      join(root, "c3", "model.safetensors.index.fp16.json"),
      JSON.stringify({ weight_map: { a: "model.fp16-00001-of-00001.safetensors" } }),
    );
    const w = openComponentWeights(join(root, "c3"));
    assert.deepEqual([...w.keys()].sort(), ["a", "b"]);
    assert.equal(readTensorData(w.get("b")!)[0], 2);
    const h = openComponentWeights(join(root, "c3"), { variant: "fp16" });
    assert.deepEqual([...h.keys()], ["a"]);
    assert.equal(readTensorData(h.get("a")!)[0], 5);
  });

  test("missing shard, broken index, shards without index, no weights", () => {
    mk("c4", "model-00001-of-00002.safetensors", "a", 1);
    writeFileSync(
      join(root, "c4", "model.safetensors.index.json"),
      JSON.stringify({ weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } }),
    );
    rejects(() => openComponentWeights(join(root, "c4")), /shard model-00002-of-00002\.safetensors listed in weight_map is missing/);
    writeFileSync(join(root, "c4", "model.safetensors.index.json"), "{");
    rejects(() => openComponentWeights(join(root, "c4")), /model\.safetensors\.index\.json: sharded weight index is not valid JSON/);

    mk("c5", "model-00001-of-00002.safetensors", "a", 1);
    rejects(() => openComponentWeights(join(root, "c5")), /has shards .* but no \*\.safetensors\.index\.json/);

    mkdirSync(join(root, "c6"));
    writeFileSync(join(root, "c6", "pytorch_model.bin"), "x");
    rejects(() => openComponentWeights(join(root, "c6")), /no safetensors weights found \(only pickle weights/);
    rejects(() => openComponentWeights(join(root, "c7")), /component directory is missing/);
  });
});
