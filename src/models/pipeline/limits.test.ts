import assert from "node:assert/strict";
import { test } from "node:test";
import { type MemoryModel, requestBytes } from "../../core/limits.ts";
import { cgroupMemoryLimit, machineBytes, machineMemory, UNET_ACTIVATION_BYTES_PER_PIXEL, VAE_DECODE_BYTES_PER_PIXEL } from "./limits.ts";

const GiB = 1024 ** 3;

test("a request's memory is its weights plus the larger of the UNet call's batch and one image's VAE decode", () => {
  const m: MemoryModel = { weightBytes: 10 * GiB, activationBytesPerPixel: UNET_ACTIVATION_BYTES_PER_PIXEL, decodeBytesPerPixel: VAE_DECODE_BYTES_PER_PIXEL, machineBytes: 24 * GiB };
  const px = 1024 * 1024;
  // Batch 1 (no guidance): the decode's full-resolution feature maps are the larger part.
  assert.equal(requestBytes(m, 1024, 1024, 1), 10 * GiB + VAE_DECODE_BYTES_PER_PIXEL * px);
  // Guidance over 2 images (batch 4): the UNet call is.
  assert.equal(requestBytes(m, 1024, 1024, 4), 10 * GiB + UNET_ACTIVATION_BYTES_PER_PIXEL * px * 4);
  // The decode runs one image at a time: n images cost the decode of one.
  const decodeOnly: MemoryModel = { ...m, activationBytesPerPixel: 0 };
  assert.equal(requestBytes(decodeOnly, 1024, 1024, 4), 10 * GiB + VAE_DECODE_BYTES_PER_PIXEL * px);
  // Models without a decode figure keep the UNet-only rule.
  assert.equal(requestBytes({ ...m, decodeBytesPerPixel: undefined }, 512, 512, 1), 10 * GiB + UNET_ACTIVATION_BYTES_PER_PIXEL * 512 * 512);
});

test("the machine the plans see: the container's limit and engine.memoryLimitGiB cap the machine's memory", () => {
  const m = machineMemory({ memory: { totalBytes: 32 * GiB, freeBytes: 20 * GiB }, memoryLimitBytes: 16 * GiB });
  assert.deepEqual(m, { totalBytes: 16 * GiB, freeBytes: 16 * GiB });
  assert.equal(machineBytes({ memory: { totalBytes: 32 * GiB, freeBytes: 20 * GiB }, memoryLimitBytes: 16 * GiB }), 15 * GiB);
  const limit = cgroupMemoryLimit();
  assert.ok(limit === undefined || (Number.isFinite(limit) && limit > 0));
  if (limit !== undefined) assert.ok(machineMemory().totalBytes <= limit);
});
