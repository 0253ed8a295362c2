import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { expectClose } from "../../test/helpers/tensors.ts";
import { readRefFloat32, readRefInts, readRefTensor, writeRefTensor } from "./io.ts";

const dir = mkdtempSync(join(tmpdir(), "easel-io-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("reads a reference fixture with the documented first values", () => {
  const t = readRefFloat32("test/fixtures/rng/randn_seed42_1x4x8x8");
  assert.deepEqual(t.shape, [1, 4, 8, 8]);
  expectClose(t.data.slice(0, 4), [1.9269153, 1.4872841, 0.9007172, -2.105521], { atol: 1e-6 });
});

test("round-trips float32, int32, int64, uint8", () => {
  writeRefTensor(join(dir, "f"), { shape: [2, 2], data: new Float32Array([1, 2.5, -3, 4]) });
  writeRefTensor(join(dir, "i.bin"), { shape: [3], data: new Int32Array([7, -8, 9]) });
  writeRefTensor(join(dir, "l"), { shape: [1], data: new BigInt64Array([5n]) });
  writeRefTensor(join(dir, "u"), { shape: [2], data: new Uint8Array([0, 255]) });
  assert.deepEqual([...readRefFloat32(join(dir, "f.json")).data], [1, 2.5, -3, 4]);
  assert.deepEqual(readRefInts(join(dir, "i")), { shape: [3], data: [7, -8, 9] });
  assert.deepEqual(readRefInts(join(dir, "l")).data, [5]);
  assert.equal(readRefTensor(join(dir, "u")).dtype, "uint8");
  assert.throws(() => readRefFloat32(join(dir, "i")), /expected float32/);
});

test("rejects size mismatch, bad meta, missing files", () => {
  writeFileSync(join(dir, "m.json"), JSON.stringify({ shape: [3], dtype: "float32" }));
  writeFileSync(join(dir, "m.bin"), new Uint8Array(8));
  assert.throws(() => readRefTensor(join(dir, "m")), /8 bytes, but shape \[3\] of float32 needs 12/);
  writeFileSync(join(dir, "m.json"), JSON.stringify({ shape: [2], dtype: "float16" }));
  assert.throws(() => readRefTensor(join(dir, "m")), /dtype "float16"/);
  assert.throws(() => readRefTensor(join(dir, "absent")), /absent\.json: tensor file is missing/);
  assert.throws(() => writeRefTensor(join(dir, "x"), { shape: [3], data: new Float32Array(2) }), /do not fill/);
});

test("expectClose: default reference tolerance scales with max |ref|, reports the worst index", () => {
  expectClose([100.005, 0], [100, 0]); // tol = 1e-4 * 100 = 0.01
  assert.throws(() => expectClose([1, 2.001, 3, 4], { data: [1, 2, 3, 4], shape: [2, 2] }), /worst at index 1 \[0, 1\]/);
  assert.throws(() => expectClose([Number.NaN], [0]), /out of tolerance/);
  assert.throws(() => expectClose([1, 2], [1]), /length/);
  expectClose([1.1], [1], { rtol: 0.2 });
});
