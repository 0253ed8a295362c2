/** The Playground and Monica sampler vocabularies, per model kind: every name plans, substitutions say so. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publishedSchedulerConfig } from "../../../test/helpers/schedules.ts";
import { EaselError } from "../../core/errors.ts";
import { planSampling, SCHEDULER_IDS } from "../../samplers/index.ts";
import { MONICA_SAMPLERS, type ModelKind, PLAYGROUND_SAMPLERS, resolveSchedulerName, schedulerFields } from "./sampler-names.ts";

/** A published scheduler config of each kind (SDXL, Playground v2.5, SD3). */
const CONFIG: Record<ModelKind, Record<string, unknown>> = {
  vp: publishedSchedulerConfig("sdxl"),
  edm: publishedSchedulerConfig("playground"),
  flow: publishedSchedulerConfig("sd3"),
};

for (const [vocab, table] of Object.entries({ playground: PLAYGROUND_SAMPLERS, monica: MONICA_SAMPLERS })) {
  for (const kind of ["vp", "edm", "flow"] as ModelKind[]) {
    test(`${vocab} names resolve and plan on ${kind} models; a nearest equivalent carries W_SAMPLER_SUBSTITUTED`, () => {
      for (const [name, byKind] of Object.entries(table)) {
        const r = resolveSchedulerName(name, kind);
        assert.ok(SCHEDULER_IDS.includes(r.id), `${name} -> ${r.id}`);
        // Case-insensitive, except where the lower-case spelling is an Easel id itself (EULER_A vs euler_a).
        if (!SCHEDULER_IDS.includes(name.toLowerCase())) assert.equal(resolveSchedulerName(name.toLowerCase(), kind).id, r.id, "case-insensitive");
        assert.ok(planSampling(CONFIG[kind], r.id, 4).modelCalls >= 1, `${name} -> ${r.id} plans on ${kind}`);
        if (byKind[kind].exact) assert.equal(r.warning, undefined, `${name} on ${kind} is exact`);
        else {
          assert.equal(r.warning?.code, "W_SAMPLER_SUBSTITUTED", `${name} on ${kind}`);
          assert.ok(r.warning.message.includes(name) && r.warning.message.includes(r.id), r.warning.message);
          assert.deepEqual(schedulerFields(r).warnings, [r.warning]);
        }
      }
    });
  }
}

test("canonical ids pass through on any kind; unknown names are E_INPUT_INVALID naming scheduler", () => {
  assert.deepEqual(resolveSchedulerName("dpmpp_2m_karras", "flow"), { id: "dpmpp_2m_karras" });
  assert.throws(
    () => resolveSchedulerName("K_NOPE", "vp"),
    (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === "scheduler",
  );
  // Playground's EULER_A on an EDM model is the documented substitution.
  assert.equal(resolveSchedulerName("EULER_A", "edm").warning?.code, "W_SAMPLER_SUBSTITUTED");
});
