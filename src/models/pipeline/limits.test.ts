import assert from "node:assert/strict";
import { test } from "node:test";
import { type MemoryModel, requestBytes } from "../../core/limits.ts";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import {
  cgroupMemoryLimit,
  componentParams,
  machineBytes,
  machineMemory,
  RESIDENT_BYTES_PER_PARAM,
  UNET_ACTIVATION_BYTES_PER_PIXEL,
  unetMemory,
  VAE_DECODE_BYTES_PER_PIXEL,
} from "./limits.ts";

const GiB = 1024 ** 3;

test("a request's memory is its weights plus the larger of the UNet call's batch and one image's VAE decode", () => {
  const m: MemoryModel = { weightBytes: 10 * GiB, activationBytesPerPixel: UNET_ACTIVATION_BYTES_PER_PIXEL, decodeBytesPerPixel: VAE_DECODE_BYTES_PER_PIXEL, machineBytes: 24 * GiB };
  const px = 1024 * 1024;
  // Batch 1 (no guidance): the decode's full-resolution feature maps are the larger part.
  assert.equal(requestBytes(m, 1024, 1024, 1), 10 * GiB + VAE_DECODE_BYTES_PER_PIXEL * px);
  // Guidance over 2 images (batch 4): the UNet call is.
  assert.equal(requestBytes(m, 1024, 1024, 4), 10 * GiB + UNET_ACTIVATION_BYTES_PER_PIXEL * px * 4);
  // The decode runs one image at a time: n images cost the decode of one.
  assert.equal(requestBytes(m, 1024, 1024, 2), requestBytes(m, 1024, 1024, 1));
  // Models without a decode figure keep the UNet-only rule.
  assert.equal(requestBytes({ ...m, decodeBytesPerPixel: undefined }, 512, 512, 1), 10 * GiB + UNET_ACTIVATION_BYTES_PER_PIXEL * 512 * 512);
});

test("everything stays loaded while it fits; below that the text encoders go on demand, and the request's peak counts them at their step", () => {
  const ckpt = loadCheckpoint("test/fixtures/models/sdxl");
  const components = ["text_encoder", "text_encoder_2", "unet", "vae"];
  const text = ["text_encoder", "text_encoder_2"];
  const at = { width: 64, height: 64, batch: 2 };
  const memory = (totalBytes: number) => ({ totalBytes, freeBytes: totalBytes, reserveBytes: 0 });
  const all = unetMemory(ckpt, components, { memory: memory(64 * GiB) }, { onDemand: text, at });
  assert.equal(all.onDemandWeightBytes, undefined);
  const need = requestBytes(all, 64, 64, 2);
  const textBytes = componentParams(ckpt, text) * RESIDENT_BYTES_PER_PARAM;
  assert.ok(textBytes > 0);

  // One byte short of everything loaded: the text encoders are opened per request.
  const tight = unetMemory(ckpt, components, { memory: memory(need - 1) }, { onDemand: text, at });
  assert.equal(tight.onDemandWeightBytes, textBytes);
  assert.equal(tight.weightBytes, all.weightBytes - textBytes);
  const tightNeed = requestBytes(tight, 64, 64, 2);
  assert.ok(tightNeed < need && tightNeed <= tight.machineBytes);
  assert.equal(tightNeed, tight.weightBytes + Math.max(textBytes, UNET_ACTIVATION_BYTES_PER_PIXEL * 64 * 64 * 2, VAE_DECODE_BYTES_PER_PIXEL * 64 * 64));

  // engine.memoryLimitGiB caps the machine the same way; with no room even on demand, everything stays listed as
  // loaded and the request check refuses what does not fit.
  const capped = unetMemory(ckpt, components, { memory: memory(64 * GiB), memoryLimitBytes: need - 1 }, { onDemand: text, at });
  assert.equal(capped.machineBytes, need - 1);
  assert.equal(capped.onDemandWeightBytes, textBytes);
  const none = unetMemory(ckpt, components, { memory: memory(all.weightBytes - textBytes) }, { onDemand: text, at });
  assert.equal(none.onDemandWeightBytes, undefined);
});

test("the machine the plans see: the container's limit and engine.memoryLimitGiB cap the machine's memory", () => {
  const m = machineMemory({ memory: { totalBytes: 32 * GiB, freeBytes: 20 * GiB }, memoryLimitBytes: 16 * GiB });
  assert.deepEqual(m, { totalBytes: 16 * GiB, freeBytes: 16 * GiB });
  assert.equal(machineBytes({ memory: { totalBytes: 32 * GiB, freeBytes: 20 * GiB }, memoryLimitBytes: 16 * GiB }), 15 * GiB);
  const limit = cgroupMemoryLimit();
  assert.ok(limit === undefined || (Number.isFinite(limit) && limit > 0));
  if (limit !== undefined) assert.ok(machineMemory().totalBytes <= limit);
});
