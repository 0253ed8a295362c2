/** The number of previews a run yields, as docs/dialects.md states it for OpenAI `partial_images`. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { previewSteps } from "./run.ts";

test("previews: max(1, min(count, evaluations - 1)) frames, spread out, none at the final evaluation", () => {
  for (let calls = 1; calls <= 60; calls++) {
    assert.equal(previewSteps(calls, 0).size, 0);
    for (let count = 1; count <= 3; count++) {
      const steps = [...previewSteps(calls, count)].sort((a, b) => a - b);
      assert.equal(steps.length, Math.max(1, Math.min(count, calls - 1)), `${calls} evaluations, ${count} asked`);
      // 0-based evaluation indices: the last frame comes before the final evaluation whenever there are two or more.
      if (calls > 1) assert.ok(steps[steps.length - 1] < calls - 1);
    }
  }
});
