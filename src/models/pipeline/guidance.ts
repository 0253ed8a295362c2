/** Classifier-free guidance on the raw network output, as every diffusers pipeline does it. */

/**
 * out = uncond + g * (cond - uncond), for a CFG batch laid out [uncond (n items), cond (n items)].
 * Returns the guided prediction [n, ...] and, for guidance rescale, the cond half.
 */
export function applyGuidance(batch: Float32Array, n: number, scale: number): { guided: Float32Array; cond: Float32Array } {
  const half = batch.length / 2;
  if (!Number.isInteger(half) || half % n !== 0) throw new Error(`CFG batch of ${batch.length} values cannot split into 2x${n}`);
  const uncond = batch.subarray(0, half);
  const cond = batch.subarray(half);
  const guided = new Float32Array(half);
  for (let i = 0; i < half; i++) guided[i] = uncond[i] + scale * (cond[i] - uncond[i]);
  return { guided, cond };
}

/** Unbiased (N-1) standard deviation, torch.std's default, computed in float64. */
function std(x: Float32Array): number {
  let mean = 0;
  for (let i = 0; i < x.length; i++) mean += x[i];
  mean /= x.length;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] - mean) ** 2;
  return Math.sqrt(s / (x.length - 1));
}

/**
 * diffusers' rescale_noise_cfg (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed",
 * §3.4): per batch item, out = r * g * std(cond)/std(g) + (1 - r) * g.
 */
export function rescaleGuidance(guided: Float32Array, cond: Float32Array, n: number, r: number): Float32Array {
  if (r <= 0) return guided;
  const per = guided.length / n;
  const out = new Float32Array(guided.length);
  for (let b = 0; b < n; b++) {
    const g = guided.subarray(b * per, (b + 1) * per);
    const c = cond.subarray(b * per, (b + 1) * per);
    const ratio = std(c) / std(g);
    for (let i = 0; i < per; i++) out[b * per + i] = r * (g[i] * ratio) + (1 - r) * g[i];
  }
  return out;
}
