import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "./index.ts";

test("engine.precision: fp32 by default; int8 from a flag or EASEL_PRECISION; bf16 refused with the reason", () => {
  assert.equal(loadConfig({ env: {} }).engine.precision, "fp32");
  assert.equal(loadConfig({ env: {}, flags: { engine: { precision: "int8" } } }).engine.precision, "int8");
  assert.equal(loadConfig({ env: { EASEL_PRECISION: "int8" } }).engine.precision, "int8");
  assert.throws(() => loadConfig({ env: {}, flags: { engine: { precision: "bf16" } } }), /no bfloat16 MatMul or Conv/);
  assert.throws(() => loadConfig({ env: { EASEL_PRECISION: "fp16" } }), /precision/);
});
