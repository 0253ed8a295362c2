import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { describe, test } from "node:test";
import { expectClose } from "../../test/helpers/tensors.ts";
import { readRefFloat32 } from "./io.ts";
import { randomSeed, TorchGenerator } from "./rng.ts";

const DIR = "test/fixtures/rng";

function assertBitExact(actual: Float32Array, ref: Float32Array, what: string): void {
  assert.equal(actual.length, ref.length, what);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const r = new Uint32Array(ref.buffer, ref.byteOffset, ref.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== r[i]) assert.fail(`${what}: first difference at ${i}: ${actual[i]} vs reference ${ref[i]}`);
  }
}

describe("TorchGenerator.randn against torch 1.13 CPU", () => {
  const files = readdirSync(DIR).filter((f) => /^randn_seed\d+_[\dx]+\.bin$/.test(f));
  test("fixture set is present", () => assert.equal(files.length, 15));
  for (const file of files) {
    const [, seed, dims] = /^randn_seed(\d+)_([\dx]+)\.bin$/.exec(file)!;
    test(`${file} is bit-exact`, () => {
      const ref = readRefFloat32(`${DIR}/${file}`);
      const shape = dims.split("x").map(Number);
      assert.deepEqual(ref.shape, shape);
      const out = new TorchGenerator().manualSeed(Number(seed)).randn(shape);
      expectClose(out, ref.data, { atol: 2e-6 });
      assertBitExact(out, ref.data, file);
    });
  }

  test("pipeline batch of 2 from one generator is one randn call", () => {
    const ref = readRefFloat32(`${DIR}/pipeline_batch2_seed42`);
    assertBitExact(new TorchGenerator(42).randn([2, 4, 8, 8]), ref.data, "batch2");
  });

  test("pipeline batch of 2 from a list of generators is one call per generator", () => {
    const ref = readRefFloat32(`${DIR}/pipeline_batch2_generator_list_seed42_43`);
    const out = new Float32Array(512);
    out.set(new TorchGenerator(42).randn([1, 4, 8, 8]), 0);
    out.set(new TorchGenerator(43).randn([1, 4, 8, 8]), 256);
    assertBitExact(out, ref.data, "generator list");
  });

  test("consecutive calls carry the state over", () => {
    const ref = readRefFloat32(`${DIR}/sequential_seed42_3x_1x4x8x8`);
    const g = new TorchGenerator(42);
    const out = new Float32Array(768);
    for (let k = 0; k < 3; k++) out.set(g.randn([1, 4, 8, 8]), k * 256);
    assertBitExact(out, ref.data, "sequential");
  });

  test("seeds wrap mod 2^32 in the engine, and negative seeds wrap mod 2^64", () => {
    const a = new TorchGenerator(2n ** 32n + 42n).randn([16]);
    assertBitExact(a, new TorchGenerator(42).randn([16]), "seed 2^32+42");
    assert.equal(new TorchGenerator(-1).initialSeed(), 2n ** 64n - 1n);
    assertBitExact(new TorchGenerator(-1).randn([16]), new TorchGenerator(4294967295).randn([16]), "seed -1");
    assert.throws(() => new TorchGenerator(2n ** 64n), /outside/);
    assert.throws(() => new TorchGenerator(1.5), /integer/);
  });

  test("fewer than 16 elements use the scalar double path (torch.manual_seed(0); torch.randn(2, 3))", () => {
    // Values as printed by torch for the well-known `torch.manual_seed(0); torch.randn(2, 3)`.
    const out = new TorchGenerator(0).randn([2, 3]);
    expectClose(out, [1.541, -0.2934, -2.1788, 0.5684, -1.0845, -1.3986], { atol: 1e-4 });
  });

  test("element counts not a multiple of 16 redraw the tail from 16 fresh uniforms", () => {
    const g = new TorchGenerator(7);
    const out = g.randn([20]);
    // The first block uses uniforms 0..15 exactly like a 16-element draw; values 4..19 come from uniforms 20..35.
    const head = new TorchGenerator(7).randn([16]);
    assertBitExact(out.slice(0, 4), head.slice(0, 4), "head");
    assert.notDeepEqual(Array.from(out.slice(4, 8)), Array.from(head.slice(4, 8)));
    // 36 uniforms were consumed, so the next 16-draw transforms uniforms 36..51, which is exactly the redrawn tail
    // (values 20..35) of a 36-element draw.
    const next = g.randn([16]);
    const ref = new TorchGenerator(7).randn([36]);
    assertBitExact(next, ref.slice(20, 36), "state after tail");
  });
});

test("randomSeed uses the injected source and never returns 0", () => {
  const seq = [0, 0.5];
  let i = 0;
  assert.equal(
    randomSeed(() => seq[i++]),
    2 ** 31,
  );
  assert.throws(() => randomSeed(() => 0), /seed 0/);
  const s = randomSeed();
  assert.ok(Number.isInteger(s) && s > 0 && s < 2 ** 32);
});
