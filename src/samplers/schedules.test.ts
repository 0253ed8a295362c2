/** Every scheduler id on every family config: timesteps / sigmas / init_noise_sigma / order against diffusers 0.32. */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { planSampling } from "./index.ts";

const DIR = join(import.meta.dirname, "../../test/fixtures/schedules");

interface Ref {
  class: string;
  order: number;
  init_noise_sigma: number | null;
  timesteps: number[];
  sigmas: number[] | null;
}

function closeRel(a: number, b: number, rel: number): boolean {
  return Math.abs(a - b) <= rel * Math.max(Math.abs(b), 1e-12) || Math.abs(a - b) < 1e-9;
}

function checkList(name: string, got: number[], want: number[], integer: boolean): void {
  assert.equal(got.length, want.length, `${name}: length ${got.length} vs ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    // Timesteps live on a 0..1000 scale: near 0 (KDPM2A's last midpoint, ~1e-6 of float noise) compare absolutely.
    const ok = integer ? got[i] === want[i] : name === "timesteps" ? Math.abs(got[i] - want[i]) <= 1e-5 * Math.max(1, Math.abs(want[i])) : closeRel(got[i], want[i], 1e-5);
    assert.ok(ok, `${name}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

for (const file of readdirSync(DIR).filter((f) => f.endsWith(".json"))) {
  const fixture = JSON.parse(readFileSync(join(DIR, file), "utf8").replace(/-Infinity/g, "null").replace(/\bNaN\b/g, "null")) as {
    base_config: Record<string, unknown>;
    steps: number;
    schedulers: Record<string, Ref>;
  };
  for (const [id, ref] of Object.entries(fixture.schedulers)) {
    test(`${file.replace(".json", "")} ${id}`, () => {
      const plan = planSampling(fixture.base_config, id, fixture.steps);
      assert.equal(plan.className, ref.class);
      const integer = ref.timesteps.every((t) => Number.isInteger(t));
      checkList("timesteps", plan.timesteps, ref.timesteps, integer);
      if (ref.sigmas) checkList("sigmas", plan.sigmas, ref.sigmas, false);
      if (ref.init_noise_sigma !== null) assert.ok(closeRel(plan.initNoiseSigma, ref.init_noise_sigma, 1e-6), `init_noise_sigma ${plan.initNoiseSigma} vs ${ref.init_noise_sigma}`);
      assert.equal(plan.order, ref.order);
    });
  }
}
