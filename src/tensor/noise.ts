/**
 * Where stochastic code gets its randomness. The torch-compatible CPU generator (rng.ts) implements it, and so does
 * a replay of injected noise (reference fixtures' `step_noise.bin`, `easel generate --step-noise`), so every
 * stochastic sampler is reproducible from a seed or from a file.
 */
export interface NoiseSource {
  /** Unit-normal float32 values for a contiguous tensor of `shape`, drawn in one call (torch.randn semantics). */
  randn(shape: readonly number[]): Float32Array;
}

/** Replays pre-drawn noise: the k-th call returns draws[k]. Throws a clear error when the draws run out. */
export class ReplayNoise implements NoiseSource {
  private next = 0;
  constructor(
    private readonly draws: Float32Array,
    private readonly drawSize: number,
  ) {
    if (drawSize <= 0 || draws.length % drawSize !== 0) {
      throw new Error(`injected noise has ${draws.length} values, not a whole number of draws of ${drawSize}`);
    }
  }

  get used(): number {
    return this.next;
  }

  randn(shape: readonly number[]): Float32Array {
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== this.drawSize) throw new Error(`injected noise draws have ${this.drawSize} values, asked for ${size}`);
    const k = this.next++;
    if ((k + 1) * size > this.draws.length) {
      throw new Error(`injected noise ran out: draw ${k + 1} asked, ${this.draws.length / size} given`);
    }
    return this.draws.slice(k * size, (k + 1) * size);
  }
}
