/** A1111's sampler and schedule names, per model kind: every pair plans, substitutions say so, legacy names split. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publishedSchedulerConfig } from "../../../test/helpers/schedules.ts";
import { EaselError } from "../../core/errors.ts";
import { planSampling, SCHEDULER_IDS } from "../../samplers/index.ts";
import { A1111_SAMPLERS, A1111_SCHEDULES, a1111NamesOf, resolveA1111Sampler } from "./a1111-names.ts";
import type { ModelKind } from "./sampler-names.ts";

const CONFIG: Record<ModelKind, Record<string, unknown>> = {
  vp: publishedSchedulerConfig("sdxl"),
  edm: publishedSchedulerConfig("playground"),
  flow: publishedSchedulerConfig("sd3"),
};

for (const kind of ["vp", "edm", "flow"] as ModelKind[]) {
  test(`every A1111 sampler x schedule resolves and plans on ${kind} models; substitutions carry W_SAMPLER_SUBSTITUTED`, () => {
    for (const sampler of A1111_SAMPLERS) {
      for (const schedule of [undefined, ...A1111_SCHEDULES.map((s) => s.label)]) {
        const r = resolveA1111Sampler(sampler.name, schedule, kind);
        assert.ok(SCHEDULER_IDS.includes(r.id), `${sampler.name}/${schedule} -> ${r.id}`);
        assert.ok(planSampling(CONFIG[kind], r.id, 4).modelCalls >= 1, `${sampler.name}/${schedule} -> ${r.id} plans on ${kind}`);
        assert.equal(r.samplerName, sampler.name);
        if (r.warning) {
          assert.equal(r.warning.code, "W_SAMPLER_SUBSTITUTED");
          assert.ok(r.warning.message.includes(sampler.name) && r.warning.message.includes(r.id), r.warning.message);
        }
        // Aliases and lower case resolve alike.
        for (const alias of [...sampler.aliases, sampler.name.toLowerCase()]) assert.equal(resolveA1111Sampler(alias, schedule, kind).id, r.id, alias);
      }
    }
  });
}

test("vp: the common pairs are exact and run the matching Easel sampler", () => {
  const cases: [string, string | undefined, string, string][] = [
    ["DPM++ 2M", "Karras", "dpmpp_2m_karras", "Karras"],
    ["DPM++ 2M", undefined, "dpmpp_2m_karras", "Karras"], // Automatic = A1111's default for DPM++ 2M
    ["DPM++ 2M", "Uniform", "dpmpp_2m", "Uniform"],
    ["Euler a", "Automatic", "euler_a", "Uniform"],
    ["Euler", "Karras", "euler_karras", "Karras"],
    ["DDIM", "normal", "ddim", "Normal"],
    ["UniPC", "karras", "unipc_karras", "Karras"],
    ["DPM++ SDE", undefined, "dpmpp_sde_karras", "Karras"],
    // Legacy combined names, as A1111 1.9+ splits them.
    ["DPM++ 2M Karras", undefined, "dpmpp_2m_karras", "Karras"],
    ["DPM++ 2M SDE Karras", undefined, "dpmpp_2m_sde_karras", "Karras"],
    ["LMS Karras", undefined, "lms_karras", "Karras"],
    // An Easel id, as an Easel infotext names it.
    ["dpmpp_2m_karras", undefined, "dpmpp_2m_karras", "Karras"],
  ];
  for (const [name, schedule, id, label] of cases) {
    const r = resolveA1111Sampler(name, schedule, "vp");
    assert.deepEqual([r.id, r.scheduleLabel, r.warning], [id, label, undefined], `${name} / ${schedule}`);
  }
});

test("vp: pairs without an implementation run the nearest, with the reason", () => {
  const r = resolveA1111Sampler("Euler a", "Karras", "vp");
  assert.equal(r.id, "euler_a");
  assert.match(r.warning?.message ?? "", /"Euler a" with schedule "Karras".*euler_a, its nearest equivalent/);
  assert.equal(resolveA1111Sampler("DPM++ 2M SDE", undefined, "vp").id, "dpmpp_2m_sde_karras");
  assert.ok(resolveA1111Sampler("DPM++ 2M SDE", undefined, "vp").warning, "exponential has no vp implementation");
  assert.ok(resolveA1111Sampler("DPM++ 3M SDE", "Karras", "vp").warning);
});

test("unknown sampler: sampler_not_found naming sampler_name; unknown schedule names scheduler", () => {
  assert.throws(
    () => resolveA1111Sampler("Warp Drive", undefined, "vp"),
    (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === "sampler_name" && e.details?.reason === "sampler_not_found",
  );
  assert.throws(
    () => resolveA1111Sampler("Euler", "Sideways", "vp"),
    (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === "scheduler",
  );
});

test("a1111NamesOf: A1111's names for a model's default scheduler id", () => {
  assert.deepEqual(a1111NamesOf("dpmpp_2m_karras"), { samplerName: "DPM++ 2M", scheduleLabel: "Karras" });
  assert.deepEqual(a1111NamesOf("euler_a"), { samplerName: "Euler a", scheduleLabel: "Uniform" });
  assert.deepEqual(a1111NamesOf("edm_euler"), { samplerName: "edm_euler", scheduleLabel: "Automatic" });
  assert.deepEqual(a1111NamesOf(undefined), { samplerName: "Default", scheduleLabel: "Automatic" });
});
