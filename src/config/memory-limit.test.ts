import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "./index.ts";

test("engine.memoryLimitGiB: unset by default; from the config or EASEL_MEMORY_LIMIT_GIB; a non-positive value is refused", () => {
  assert.equal(loadConfig({ env: {} }).engine.memoryLimitGiB, undefined);
  assert.equal(loadConfig({ env: {}, flags: { engine: { memoryLimitGiB: 16 } } }).engine.memoryLimitGiB, 16);
  assert.equal(loadConfig({ env: { EASEL_MEMORY_LIMIT_GIB: "12.5" } }).engine.memoryLimitGiB, 12.5);
  assert.throws(() => loadConfig({ env: { EASEL_MEMORY_LIMIT_GIB: "0" } }), /memoryLimitGiB/);
  assert.throws(() => loadConfig({ env: { EASEL_MEMORY_LIMIT_GIB: "lots" } }), /memoryLimitGiB/);
});
