/**
 * Per-step sampler overhead: the scheduler arithmetic alone (a fake, allocation-light denoiser) on a
 * [2, 4, 128, 128] latent (SDXL 1024², batch 2). Returns ms per denoiser call for a few samplers.
 */
import { planSampling, runSampling } from "../src/samplers/index.ts";
import { TorchGenerator } from "../src/tensor/rng.ts";

const SHAPE = [2, 4, 128, 128];
const VP = {
  _class_name: "EulerDiscreteScheduler",
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  num_train_timesteps: 1000,
  steps_offset: 1,
  timestep_spacing: "leading",
};
const EDM = { _class_name: "EDMDPMSolverMultistepScheduler", sigma_min: 0.002, sigma_max: 80, sigma_data: 0.5 };
const FLOW = { _class_name: "FlowMatchEulerDiscreteScheduler", shift: 3.0 };

const CASES: [string, Record<string, unknown>, string | undefined][] = [
  ["euler", VP, "euler"],
  ["euler_a", VP, "euler_a"],
  ["heun", VP, "heun"],
  ["dpmpp_2m_karras", VP, "dpmpp_2m_karras"],
  ["dpmpp_2m_sde_karras", VP, "dpmpp_2m_sde_karras"],
  ["unipc", VP, "unipc"],
  ["lms", VP, "lms"],
  ["edm_dpmpp_2m", EDM, undefined],
  ["flow_euler", FLOW, undefined],
];

export async function benchSamplers(steps = 10): Promise<Record<string, number>> {
  const results: Record<string, number> = {};
  const size = SHAPE.reduce((a, b) => a * b, 1);
  const modelOut = new Float32Array(size).fill(0.01);
  for (const [name, cfg, id] of CASES) {
    const plan = planSampling(cfg, id, steps);
    const gen = new TorchGenerator(0);
    const x = gen.randn(SHAPE);
    const t0 = performance.now();
    await runSampling(plan, async () => modelOut, x, { shape: SHAPE, noise: gen });
    results[`${name} ms/step`] = (performance.now() - t0) / plan.modelCalls;
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [k, v] of Object.entries(await benchSamplers())) console.log(`${k.padEnd(32)} ${v.toFixed(2)}`);
}
