/** Test doubles for the job service: a solid-colour provider, a one-model registry, a settable clock. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Config, type ConfigInput, loadConfig } from "../../src/config/index.ts";
import type { GenerationRequest, ModelInfo } from "../../src/core/types.ts";
import type { ImageProvider, ProviderEvent, ProviderResult } from "../../src/providers/spec.ts";
import { familyLimits } from "../helpers/models.ts";

export const MODEL: ModelInfo = {
  id: "tiny-sd",
  family: "sd15",
  kind: "vp",
  backend: "local",
  aliases: ["tiny"],
  defaults: { width: 8, height: 8, steps: 4, guidanceScale: 7.5 },
  limits: familyLimits("sd15"),
  created: 1_700_000_000,
};

export const models = {
  list: () => [MODEL],
  find: (name: string) => (name === MODEL.id || MODEL.aliases.includes(name) ? MODEL : undefined),
};

export function request(over: Partial<GenerationRequest> = {}): GenerationRequest {
  return { model: "tiny-sd", prompt: "a red square", n: 1, width: 8, height: 8, output: { format: "png" }, ...over };
}

/** Data dir in /tmp and a price of 1 credit per 8x8 image at the model's 4 default steps. */
export function testConfig(over: ConfigInput = {}): Config {
  const dataDir = mkdtempSync(join(tmpdir(), "easel-jobs-"));
  return loadConfig({
    env: {},
    flags: {
      dataDir,
      pricing: { default: { perImage: 1, referencePixels: 64, referenceSteps: 4 } },
      ...over,
    },
  });
}

export function settableClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

export interface SolidProviderOptions {
  /** Wait before answering (ms), or until this promise resolves. */
  delayMs?: number;
  gate?: Promise<void>;
  /** Called when a generation starts. */
  onStart?: (req: GenerationRequest) => void;
  fail?: Error;
  rgb?: [number, number, number];
  previews?: boolean;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : Object.assign(new Error("aborted"), { name: "AbortError" });
}

/** Returns n solid-colour images of the requested size; honours the abort signal while it waits. */
export function solidProvider(o: SolidProviderOptions = {}): ImageProvider & { calls: number } {
  const p = {
    id: "solid",
    calls: 0,
    async generate(req: GenerationRequest, opts: { signal?: AbortSignal; onEvent?: (e: ProviderEvent) => void }): Promise<ProviderResult> {
      p.calls++;
      o.onStart?.(req);
      const seed = req.seed ?? 1234;
      const image = (s: number) => {
        const rgb = new Uint8Array(req.width * req.height * 3);
        const [r, g, b] = o.rgb ?? [255, 0, 0];
        for (let i = 0; i < rgb.length; i += 3) [rgb[i], rgb[i + 1], rgb[i + 2]] = [r, g, b];
        return { width: req.width, height: req.height, rgb, seed: s };
      };
      opts.onEvent?.({ type: "progress", step: 1, totalSteps: 2 });
      if (o.previews) opts.onEvent?.({ type: "preview", index: 0, step: 1, image: image(seed) });
      const waits: Promise<unknown>[] = [];
      if (o.delayMs) waits.push(new Promise((r) => setTimeout(r, o.delayMs)));
      if (o.gate) waits.push(o.gate);
      if (waits.length > 0) {
        await new Promise<void>((resolve, reject) => {
          if (opts.signal?.aborted) return reject(abortError(opts.signal));
          opts.signal?.addEventListener("abort", () => reject(abortError(opts.signal!)), { once: true });
          Promise.all(waits).then(() => resolve(), reject);
        });
      }
      if (o.fail) throw o.fail;
      opts.onEvent?.({ type: "progress", step: 2, totalSteps: 2 });
      return { seed, images: Array.from({ length: req.n }, (_, i) => image(seed + i)), warnings: [] };
    },
  };
  return p;
}
