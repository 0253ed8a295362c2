/**
 * The five generation endpoints as the fuzz suite sees them: a valid request, and for each field the values the
 * endpoint's documented schema refuses (docs/dialects.md). Every arbitrary here yields only refused values, so a
 * request carrying one must never generate or charge.
 */
import fc from "fast-check";
import { SIZES as MONICA_SIZES } from "../../src/dialects/monica-playground/schema.ts";
import { SCHEDULERS as MONICA_SCHEDULERS, MODELS as MONICA_SD_MODELS, SIZES as MONICA_SD_SIZES } from "../../src/dialects/monica-sd/schema.ts";
import { FILTER_MODELS, SCHEDULERS as PLAYGROUND_SCHEDULERS, PROMPT_FILTERS } from "../../src/dialects/playground/schema.ts";
import type { Shape } from "../http/shapes.ts";

export interface Endpoint {
  shape: Shape;
  url: string;
  /** The valid key, in this dialect's header. */
  auth: Record<string, string>;
  /** A request the endpoint accepts. */
  valid: Record<string, unknown>;
  /** Per field: values the endpoint must refuse for it. */
  invalid: Record<string, fc.Arbitrary<unknown>>;
  /** Unknown fields are refused (OpenAI) rather than ignored (the others). */
  strict: boolean;
  /** Numbers and booleans also accepted as strings (Monica). */
  lenientStrings: boolean;
}

/** The numeric spellings Monica's schema converts (src/dialects/_shared/numbers.ts). */
const NUMERIC = /^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$/;

const finite = { noNaN: true, noDefaultInfinity: true } as const;
const smallJson = fc.oneof(fc.integer(), fc.boolean(), fc.string({ maxLength: 8 }), fc.constant(null));

/** Anything but a string (JSON has no undefined; null only where the field is required). */
const notString = (required: boolean) =>
  fc.oneof(
    fc.integer(),
    fc.double(finite),
    fc.boolean(),
    fc.array(smallJson, { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 6 }), smallJson, { maxKeys: 3 }),
    ...(required ? [fc.constant(null)] : []),
  );

/** Anything but a number; with lenient strings, no string that spells one. */
const notNumber = (lenient: boolean) =>
  fc.oneof(
    lenient ? fc.string({ maxLength: 12 }).filter((s) => !NUMERIC.test(s)) : fc.string({ maxLength: 12 }),
    fc.boolean(),
    fc.array(fc.integer(), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 6 }), fc.integer(), { maxKeys: 3 }),
  );

/** Numbers outside [min, max] (max may be absent), and, with lenient strings, their string spelling. */
function numberOutside(min: number, max: number | undefined, lenient: boolean): fc.Arbitrary<unknown> {
  // Filtered numerically: -0 passes an excluded max of 0 but is written "0".
  const below = fc.double({ ...finite, min: -1e300, max: min, maxExcluded: true }).filter((x) => x < min);
  const above = max === undefined ? [] : [fc.double({ ...finite, min: max, minExcluded: true, max: 1e300 }).filter((x) => x > max)];
  const n = fc.oneof(below, ...above);
  return lenient ? fc.oneof(n, n.map((x) => String(x))) : n;
}

/** Integers outside [min, max], non-integers inside it, and wrong types. */
function intInvalid(min: number, max: number | undefined, lenient: boolean): fc.Arbitrary<unknown> {
  const fractional = fc.double({ ...finite, min, max: max ?? min + 1e6 }).filter((x) => !Number.isInteger(x));
  return fc.oneof(numberOutside(min, max, lenient), fractional, notNumber(lenient));
}

function numInvalid(min: number, max: number | undefined, lenient: boolean): fc.Arbitrary<unknown> {
  return fc.oneof(numberOutside(min, max, lenient), notNumber(lenient));
}

/** Strings not in `allowed` (ASCII, full Unicode and near-misses), and wrong types. */
function enumInvalid(allowed: readonly string[], opts: { nullable?: boolean } = {}): fc.Arbitrary<unknown> {
  const near = fc.constantFrom(...allowed).chain((a) =>
    fc.constantFrom(a.toUpperCase(), a.toLowerCase(), ` ${a}`, `${a} `, `${a}\u0000`, a.slice(1), `${a}x`, a.normalize("NFKD").replace(/./, "\uff21")),
  );
  const strings = fc.oneof(fc.string({ maxLength: 16 }), fc.string({ unit: "binary", maxLength: 8 }), near);
  return fc.oneof(strings.filter((s) => !allowed.includes(s)), notString(!opts.nullable));
}

/** Text fields: wrong types, empty (when a minimum of 1 applies), one past the maximum length. */
function textInvalid(max: number, opts: { required?: boolean; nonEmpty?: boolean } = {}): fc.Arbitrary<unknown> {
  return fc.oneof(
    notString(opts.required ?? false),
    fc.constant("x".repeat(max + 1)),
    fc.constant("\u00e9".repeat(max + 1)),
    ...(opts.nonEmpty ? [fc.constant("")] : []),
  );
}

function booleanInvalid(lenient: boolean): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.integer().filter((n) => n !== 0 && n !== 1),
    fc.string({ maxLength: 8 }).filter((s) => !lenient || (s !== "true" && s !== "false")),
    fc.array(fc.boolean(), { maxLength: 2 }),
  );
}

/** "WxH" strings OpenAI refuses: malformed, or sides off the multiple of 8 / outside 64-2048. */
const badSize = fc.oneof(
  fc.string({ maxLength: 12 }).filter((s) => {
    const m = /^(\d{1,5})x(\d{1,5})$/.exec(s);
    if (s === "auto") return false;
    return !m || [m[1], m[2]].some((v) => Number(v) % 8 !== 0 || Number(v) < 64 || Number(v) > 2048);
  }),
  fc.tuple(fc.integer({ min: 0, max: 99999 }), fc.integer({ min: 0, max: 99999 }))
    .filter(([w, h]) => [w, h].some((v) => v % 8 !== 0 || v < 64 || v > 2048))
    .map(([w, h]) => `${w}x${h}`),
  fc.constantFrom("AUTO", "64X64", "64*64", "64x64x64", " 64x64", "-64x64", "0x0", "\uff16\uff14x64"),
  notString(false),
);

const OPENAI_SCHEDULER_TOO_LONG = "e".repeat(65);

export const ENDPOINTS: Endpoint[] = [
  {
    shape: "openai",
    url: "/v1/images/generations",
    auth: { authorization: "Bearer sk-test" },
    valid: { prompt: "a lighthouse at dusk", size: "64x64", response_format: "b64_json" },
    strict: true,
    lenientStrings: false,
    invalid: {
      prompt: textInvalid(32000, { required: true, nonEmpty: true }),
      model: fc.oneof(notString(false), fc.constant(""), fc.constantFrom("dall-e-3", "gpt-image-1", "sd9", "../sdxl")),
      n: intInvalid(1, 10, false),
      size: badSize,
      quality: enumInvalid(["standard", "hd", "low", "medium", "high", "auto"], { nullable: true }),
      response_format: enumInvalid(["url", "b64_json"], { nullable: true }),
      output_format: enumInvalid(["png", "jpeg", "webp"], { nullable: true }),
      output_compression: intInvalid(0, 100, false),
      // "transparent" is accepted (an opaque image with W_BACKGROUND_OPAQUE), as OpenAI accepts it.
      background: enumInvalid(["transparent", "opaque", "auto"], { nullable: true }),
      moderation: enumInvalid(["low", "auto"], { nullable: true }),
      style: enumInvalid(["vivid", "natural"], { nullable: true }),
      user: fc.oneof(notString(true), fc.constant("u".repeat(257))),
      stream: booleanInvalid(false),
      partial_images: intInvalid(0, 3, false),
      negative_prompt: textInvalid(32000),
      seed: intInvalid(0, Number.MAX_SAFE_INTEGER, false),
      steps: fc.oneof(intInvalid(1, undefined, false), fc.integer({ min: 100_000, max: 2 ** 31 - 1 })),
      guidance_scale: fc.oneof(numInvalid(0, undefined, false), fc.double({ ...finite, min: 1e6, max: 1e300 })),
      scheduler: fc.oneof(notString(false), fc.constant(""), fc.constant(OPENAI_SCHEDULER_TOO_LONG), fc.constantFrom("K_NOPE", "euler-", "DPM++ 9M")),
      clip_skip: intInvalid(0, undefined, false),
      max_sequence_length: intInvalid(1, undefined, false),
      use_t5: booleanInvalid(false),
    },
  },
  {
    shape: "monica-playground",
    url: "/v1/image/gen/playground",
    auth: { authorization: "Bearer sk-test" },
    valid: { prompt: "a lighthouse at dusk", step: 2 },
    strict: false,
    lenientStrings: true,
    invalid: {
      prompt: textInvalid(4000, { required: true, nonEmpty: true }),
      model: enumInvalid(["playground-v2-5"], { nullable: true }),
      negative_prompt: textInvalid(4000),
      count: intInvalid(1, 4, true),
      size: enumInvalid(MONICA_SIZES, { nullable: true }),
      step: intInvalid(1, 50, true),
      seed: intInvalid(0, 2147483647, true),
      safety_check: booleanInvalid(true),
      cfg_scale: numInvalid(0, 30, true),
    },
  },
  {
    shape: "monica-sd",
    url: "/v1/image/gen/sd",
    auth: { authorization: "Bearer sk-test" },
    valid: { model: "sdxl", prompt: "a lighthouse at dusk", num_inference_steps: 2 },
    strict: false,
    lenientStrings: true,
    invalid: {
      model: enumInvalid(MONICA_SD_MODELS),
      prompt: textInvalid(4000, { required: true, nonEmpty: true }),
      negative_prompt: textInvalid(4000),
      seed: intInvalid(0, 4294967295, true),
      size: enumInvalid(MONICA_SD_SIZES, { nullable: true }),
      steps: intInvalid(1, 500, true),
      cfg_scale: fc.oneof(numInvalid(0, 50, true), fc.double({ ...finite, min: 0, max: 1, maxExcluded: true }).filter((x) => x < 1)),
      num_outputs: intInvalid(1, 4, true),
      output_quality: intInvalid(0, 100, true),
      scheduler: enumInvalid(MONICA_SCHEDULERS, { nullable: true }),
      num_inference_steps: intInvalid(1, 500, true),
    },
  },
  {
    shape: "playground",
    url: "/api/models/external/v1",
    auth: { authorization: "Bearer sk-test" },
    valid: { prompt: "a lighthouse at dusk", width: 64, height: 64, num_inference_steps: 2 },
    strict: false,
    lenientStrings: false,
    invalid: {
      prompt: textInvalid(10000, { required: true, nonEmpty: true }),
      negative_prompt: textInvalid(10000),
      filter_model: fc.oneof(fc.constantFrom("Photorealism", "Playground_v3"), enumInvalid(FILTER_MODELS, { nullable: true })),
      width: fc.oneof(intInvalid(64, 2048, false), fc.integer({ min: 64, max: 2048 }).filter((v) => v % 8 !== 0)),
      height: fc.oneof(intInvalid(64, 2048, false), fc.integer({ min: 64, max: 2048 }).filter((v) => v % 8 !== 0)),
      num_inference_steps: intInvalid(1, 150, false),
      guidance_scale: numInvalid(0, 30, false),
      scheduler: enumInvalid(PLAYGROUND_SCHEDULERS, { nullable: true }),
      seed: intInvalid(1, 65535, false),
      init_image: fc.oneof(
        notString(false),
        fc.constant(""),
        fc.string({ maxLength: 40 }).filter((s) => /[^A-Za-z0-9+/_=\-\s]/.test(s)),
        fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString("base64")),
        fc.constantFrom(
          Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>').toString("base64"),
          Buffer.from("GIF89a\u0001\u0000\u0001\u0000").toString("base64"),
          Buffer.from("\u0000\u0000\u0000\u0018ftypheic").toString("base64"),
          `data:image/png;base64,${Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]).toString("base64")}`,
        ),
      ),
      // Without init_image any strength is refused.
      strength: fc.oneof(fc.double(finite), fc.string({ maxLength: 6 }), fc.boolean()),
      expand_prompt: fc.oneof(fc.constant(true), booleanInvalid(false)),
      verify_prompt_safety: booleanInvalid(false),
      prompt_rejection_topics: fc.oneof(
        fc.array(fc.integer(), { minLength: 1, maxLength: 3 }),
        fc.string({ maxLength: 10 }),
        fc.constant([""]),
      ),
      prompt_filter: enumInvalid(PROMPT_FILTERS, { nullable: true }),
    },
  },
  {
    shape: "segmind",
    url: "/v1/playground-v2.5",
    auth: { "x-api-key": "sk-test" },
    valid: { prompt: "a lighthouse at dusk", num_inference_steps: 20 },
    strict: false,
    lenientStrings: false,
    invalid: {
      prompt: textInvalid(10000, { required: true, nonEmpty: true }),
      negative_prompt: textInvalid(10000),
      samples: intInvalid(1, 4, false),
      num_inference_steps: intInvalid(20, 100, false),
      guidance_scale: numInvalid(1, 25, false),
      seed: intInvalid(-1, 999999999999999, false),
      base64: booleanInvalid(false),
    },
  },
];

/** Every field name the OpenAI schema knows (unknown ones are refused there). */
export const OPENAI_FIELDS = new Set(Object.keys(ENDPOINTS[0].invalid));
