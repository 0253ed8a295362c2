/**
 * A job's events arrive in the order the executor produced them, and every preview that was taken arrives before
 * the job's answer, however long each preview takes to encode (large noisy frames encode slowly, small ones
 * fast, so without ordering a late large frame would lose the race against completion).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationEvent, GenerationRequest } from "../../src/core/types.ts";
import type { ImageProvider, ProviderGenerateOptions, ProviderResult, RawImage } from "../../src/providers/spec.ts";
import { harness } from "./harness.ts";
import { request } from "./helpers.ts";
import { httpHarness, keyHeaders } from "./http-harness.ts";

/** Seeded noise: PNG encodes it slowly in proportion to its area. */
function noise(size: number, seed: number): RawImage {
  const rgb = new Uint8Array(size * size * 3);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < rgb.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    rgb[i] = s >>> 24;
  }
  return { width: size, height: size, rgb, seed };
}

/** Emits one progress event and one preview per frame size, back to back, then answers at once with a tiny image. */
function previewingProvider(sizes: (job: number) => number[]): ImageProvider & { calls: number } {
  const p = {
    id: "previews",
    calls: 0,
    async generate(req: GenerationRequest, o: ProviderGenerateOptions): Promise<ProviderResult> {
      const job = p.calls++;
      const frames = sizes(job);
      frames.forEach((size, i) => {
        o.onEvent?.({ type: "progress", step: i + 1, totalSteps: frames.length + 1 });
        o.onEvent?.({ type: "preview", index: i, step: i + 1, image: noise(size, job * 100 + i + 1) });
      });
      o.onEvent?.({ type: "progress", step: frames.length + 1, totalSteps: frames.length + 1 });
      return { seed: 7, images: Array.from({ length: req.n }, () => ({ ...noise(8, 7), seed: 7 })), warnings: [] };
    },
  };
  return p;
}

test("under load, every job's previews arrive complete and in order, before its answer", { timeout: 120_000 }, async (t) => {
  const FRAMES = 10;
  // Frame sizes 64-352 px in a different rotation per job: fast and slow encodes alternate unpredictably.
  const provider = previewingProvider((job) => Array.from({ length: FRAMES }, (_, i) => 64 + 32 * ((FRAMES - i + job) % FRAMES)));
  const h = await harness({ provider, concurrency: 3 });
  try {
    const principal = await h.svc.authenticate((await h.admin.create({ name: "k" })).key);
    const jobs = Array.from({ length: 6 }, async () => {
      const events: GenerationEvent[] = [];
      let answered = false;
      let late = 0;
      const r = await h.svc.generate(request({ partialImages: FRAMES }), {
        dialect: "openai",
        principal,
        onEvent: (e) => {
          if (answered) late++;
          events.push(e);
        },
      });
      answered = true;
      return { r, events, late: () => late };
    });
    const results = await Promise.all(jobs);
    await new Promise((r) => setTimeout(r, 200));
    for (const { r, events, late } of results) {
      assert.equal(late(), 0, "no event after the answer");
      assert.ok(events.every((e) => e.jobId === r.jobId));
      assert.equal(events[0].type, "queued", "queued comes first");
      const previews = events.filter((e) => e.type === "preview");
      assert.deepEqual(
        previews.map((e) => e.index),
        Array.from({ length: FRAMES }, (_, i) => i),
        "every preview, in order",
      );
      // Progress and previews interleave exactly as emitted.
      const shape = events.slice(1).map((e) => (e.type === "preview" ? `p${e.index}` : e.type === "progress" ? `s${e.step}` : e.type));
      const expected = [...Array.from({ length: FRAMES }, (_, i) => [`s${i + 1}`, `p${i}`]).flat(), `s${FRAMES + 1}`];
      assert.deepEqual(shape, expected);
    }
    t.diagnostic(`${results.length} jobs x ${FRAMES} previews (64-352 px noise) delivered in order before each answer`);
  } finally {
    await h.dispose();
  }
});

test("OpenAI streaming: a slow last partial image is still sent before image_generation.completed", { timeout: 60_000 }, async () => {
  // The last frame is the largest: its encode finishes well after the tiny final image is ready.
  const h = await httpHarness({ provider: previewingProvider(() => [16, 16, 512]) });
  try {
    const { key } = await h.admin.create({ name: "k" });
    const res = await h.app.inject({
      method: "POST",
      url: "/v1/images/generations",
      headers: keyHeaders(key),
      payload: { model: "sd15", prompt: "a lighthouse", size: "64x64", stream: true, partial_images: 3 },
    });
    assert.equal(res.statusCode, 200, res.body);
    const events = [...res.body.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
    assert.deepEqual(events, [
      "image_generation.partial_image",
      "image_generation.partial_image",
      "image_generation.partial_image",
      "image_generation.completed",
    ]);
    const indices = [...res.body.matchAll(/"partial_image_index":(\d+)/g)].map((m) => Number(m[1]));
    assert.deepEqual(indices, [0, 1, 2]);
  } finally {
    await h.dispose();
  }
});
