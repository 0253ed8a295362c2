/** Limits every family starts from; a family's index.ts states what differs (core/limits.ts checks requests). */
import { readFileSync } from "node:fs";
import { freemem, totalmem } from "node:os";
import type { Checkpoint } from "../../checkpoint/checkpoint.ts";
import type { MemoryModel, ModelLimits } from "../../core/limits.ts";
import type { RuntimeOptions } from "./family.ts";

/** Images per request and steps: what one worker is allowed to spend on one request. */
export const MAX_IMAGES = 16;
export const MAX_STEPS = 1000;

/** UNet pipelines (SD1.x, SDXL, Playground): any multiple of the VAE factor 8, classifier-free guidance 0-50. */
export function unetLimits(o: { maxClipSkip: number; prompt2: boolean; img2imgStrength: number }): ModelLimits {
  return {
    sizeMultiple: 8,
    minSize: 8,
    maxSize: 8192,
    maxImages: MAX_IMAGES,
    maxSteps: MAX_STEPS,
    guidance: { min: 0, max: 50 },
    guidanceRescale: true,
    negativePrompt: true,
    prompt2: o.prompt2,
    prompt3: false,
    maxClipSkip: o.maxClipSkip,
    maxSequenceLength: 0,
    img2img: { rule: "truncate", defaultStrength: o.img2imgStrength },
  };
}

/**
 * Resident bytes per parameter of a loaded component: float32 weights from the graph cache plus onnxruntime's own.
 * Measured once the session is created and the C heap's free pages returned (src/runtime/native-heap.ts): SD1.5's
 * UNet (859.5 M parameters) 3.31 GiB, SDXL's (2567.5 M) 9.68 GiB, 4.1 bytes each; before, 4.5 and 4.7. With a margin,
 * since a first start also holds what building the graphs left behind (`npm run bench -- --only e2e`: SDXL at
 * 1024² peaks at 16.6 GiB on a first start and 16.2 GiB warm, against this figure's 17.0 GiB estimate).
 */
export const RESIDENT_BYTES_PER_PARAM = 4.3;

/**
 * Activation bytes per output pixel per image in a UNet call's batch (fused attention, no score matrices held).
 * Measured peak above the open session (`npm run bench -- --only sd15,sdxl`): SD1.5 512² batch 2 0.60 GiB
 * (1.2 KB per pixel), SDXL 512² batch 2 0.14 GiB, SDXL 1024² batch 2 0.45 GiB (0.23 KB); with a margin over the
 * largest.
 */
export const UNET_ACTIVATION_BYTES_PER_PIXEL = 1_500;

/**
 * Activation bytes per output pixel of one image's VAE decode (SD / SDXL AutoencoderKL decoder, 128-channel
 * full-resolution feature maps; the mid-block attention is fused, so nothing grows with the square of the tokens).
 * Measured peak above the open session, SDXL's VAE at 512² (2 threads): 2,660 bytes per pixel (0.65 GiB) since its
 * sessions leave out the NCHWc layout (src/models/components/vae.ts; 3,690 with it). It scales with the pixels: with
 * the NCHWc layout, 1024² added 3.0 GiB end to end. With a margin.
 */
export const VAE_DECODE_BYTES_PER_PIXEL = 2_900;

/** Memory kept free for the process itself and the system. */
export const MEMORY_RESERVE_BYTES = 1024 ** 3;

/** This process's cgroup memory limit (a container's), where one is set: cgroup v2 memory.max, else v1's limit. */
export function cgroupMemoryLimit(): number | undefined {
  for (const file of ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]) {
    try {
      const n = Number(readFileSync(file, "utf8").trim()); // "max" (no limit) is NaN
      // cgroup v1 reports "no limit" as a huge page-rounded number.
      if (Number.isFinite(n) && n > 0 && n < 2 ** 60) return n;
    } catch {
      // not Linux, or no such controller
    }
  }
  return undefined;
}

/**
 * The memory the plans may use: RuntimeOptions.memory in tests, else os.totalmem() / os.freemem(), each capped by
 * the container's cgroup limit and by engine.memoryLimitGiB (RuntimeOptions.memoryLimitBytes).
 */
export function machineMemory(rt?: Pick<RuntimeOptions, "memory" | "memoryLimitBytes">): { totalBytes: number; freeBytes: number; reserveBytes?: number } {
  const cap = Math.min(rt?.memoryLimitBytes ?? Infinity, rt?.memory ? Infinity : (cgroupMemoryLimit() ?? Infinity));
  const m = rt?.memory ?? { totalBytes: totalmem(), freeBytes: freemem() };
  return { ...m, totalBytes: Math.min(m.totalBytes, cap), freeBytes: Math.min(m.freeBytes, cap) };
}

/** The machine's memory as the UNet plans see it (machineMemory's total), less the reserve. */
export function machineBytes(rt?: Pick<RuntimeOptions, "memory" | "memoryLimitBytes">): number {
  const m = machineMemory(rt);
  return m.totalBytes - (m.reserveBytes ?? MEMORY_RESERVE_BYTES);
}

/** Parameters of the named components of a checkpoint, from the safetensors headers. */
export function componentParams(ckpt: Checkpoint, names: readonly string[]): number {
  let n = 0;
  for (const name of names) {
    for (const e of ckpt.components[name]?.weights.values() ?? []) n += e.shape.reduce((a, b) => a * b, 1);
  }
  return n;
}

/** A UNet pipeline's memory model: every listed component resident, UNet activations per pixel, one image's VAE decode. */
export function unetMemory(ckpt: Checkpoint, components: readonly string[], rt?: Pick<RuntimeOptions, "memory" | "memoryLimitBytes">): MemoryModel {
  return {
    weightBytes: componentParams(ckpt, components) * RESIDENT_BYTES_PER_PARAM,
    activationBytesPerPixel: UNET_ACTIVATION_BYTES_PER_PIXEL,
    decodeBytesPerPixel: VAE_DECODE_BYTES_PER_PIXEL,
    machineBytes: machineBytes(rt),
  };
}
