/** Assertions on Easel's coded errors. */
import assert from "node:assert/strict";
import { isEaselError } from "../../src/core/errors.ts";

/** `fn` throws an EaselError with this code whose message matches `pattern`. */
export function throwsEasel(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isEaselError(e), String(e));
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}
