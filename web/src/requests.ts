/**
 * "Copy as request": the form's settings as a request to each API this server speaks, where that API can express
 * them, else the reason it cannot. Model names, sizes and ranges follow each dialect's schema in src/dialects/.
 */
import type { Model } from "./api.ts";

export interface Settings {
  prompt: string;
  negativePrompt: string;
  model: string;
  width: number;
  height: number;
  steps: number;
  guidance: number;
  /** Canonical scheduler id; "" = the model's own. */
  scheduler: string;
  /** null = random. */
  seed: number | null;
  n: number;
  /** img2img: the starting image as a data: URL. */
  initImage: string | null;
  strength: number;
}

export type RequestText = { id: string; label: string; text: string } | { id: string; label: string; unavailable: string };

/** A shell single-quoted string ('it'\''s'). */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function curl(base: string, path: string, auth: "bearer" | "x-api-key", body: Record<string, unknown>): string {
  const key = auth === "bearer" ? `-H "Authorization: Bearer $EASEL_API_KEY"` : `-H "x-api-key: $EASEL_API_KEY"`;
  return [`curl -sS ${base}${path}`, `-H "Content-Type: application/json"`, key, `-d ${shellQuote(JSON.stringify(body))}`].join(" \\\n  ");
}

/** The name a dialect knows the model by: the first of `names` that is the model's id or one of its aliases. */
function nameIn(m: Model, names: Record<string, string>): string | undefined {
  for (const [canonical, dialectName] of Object.entries(names)) {
    if (m.id === canonical || m.aliases.includes(canonical)) return dialectName;
  }
  return undefined;
}

// Exact name -> canonical scheduler id pairs, per model kind.
// Copied from src/dialects/_shared/sampler-names.ts#PLAYGROUND_SAMPLERS (entries marked exact; sampler-name-copies.test.ts there checks it).
export const PLAYGROUND_SCHEDULERS: Record<string, Record<string, string>> = {
  vp: {
    dpmpp_2m_karras: "DPMPP_2M_K",
    euler_a: "EULER_A",
    ddim: "DDIM",
    plms: "PLMS",
    euler: "EULER",
    heun: "HEUN",
    dpm2: "DPM2",
    dpm2_a: "DPM2_A",
    lms: "LMS",
    lms_karras: "LMS_K",
    dpmpp_2m: "DPMPP_2M",
    dpmpp_2m_lu: "DPMPP_2M_LU",
    dpmpp_2m_sde: "DPMPP_2M_SDE",
    dpmpp_2m_sde_karras: "DPMPP_2M_SDE_K",
    dpmpp_2m_sde_lu: "DPMPP_2M_SDE_LU",
    dpmpp_sde: "DPMPP_SDE",
    dpmpp_sde_karras: "DPMPP_SDE_K",
  },
  edm: { edm_dpmpp_2m: "DPMPP_2M_K", edm_euler: "EULER", edm_dpmpp_2m_exp: "DPMPP_2M_LU", edm_dpmpp_2m_sde: "DPMPP_2M_SDE", edm_dpmpp_2m_sde_exp: "DPMPP_2M_SDE_LU" },
  flow: { flow_euler: "EULER", flow_heun: "HEUN" },
};
// Copied from src/dialects/_shared/sampler-names.ts#MONICA_SAMPLERS (entries marked exact; sampler-name-copies.test.ts there checks it).
export const MONICA_SCHEDULERS: Record<string, Record<string, string>> = {
  vp: { euler: "K_EULER", ddim: "DDIM", ddpm: "DDPM", dpmpp_2m: "K_DPMPP_2M", dpmpp_2s_a: "K_DPMPP_2S_ANCESTRAL", dpm2: "K_DPM_2", dpm2_a: "K_DPM_2_ANCESTRAL", euler_a: "K_EULER_ANCESTRAL", heun: "K_HEUN", lms: "K_LMS" },
  edm: { edm_euler: "K_EULER", edm_dpmpp_2m: "K_DPMPP_2M" },
  flow: { flow_euler: "K_EULER", flow_dpmpp_2m: "K_DPMPP_2M", flow_heun: "K_HEUN" },
};

/** The body for `POST /v1/images/generations` (Easel's extension fields for what OpenAI's API lacks). */
export function openAiBody(s: Settings): Record<string, unknown> {
  return {
    model: s.model,
    prompt: s.prompt,
    ...(s.negativePrompt ? { negative_prompt: s.negativePrompt } : {}),
    n: s.n,
    size: `${s.width}x${s.height}`,
    steps: s.steps,
    guidance_scale: s.guidance,
    ...(s.scheduler ? { scheduler: s.scheduler } : {}),
    ...(s.seed !== null ? { seed: s.seed } : {}),
    response_format: "url",
  };
}

function openAi(s: Settings, base: string): RequestText {
  const label = "OpenAI (curl)";
  if (s.initImage) return { id: "openai", label, unavailable: "OpenAI's generations endpoint takes no starting image." };
  return { id: "openai", label, text: curl(base, "/v1/images/generations", "bearer", openAiBody(s)) };
}

function openAiSdk(s: Settings, base: string): RequestText {
  const label = "OpenAI SDK (JavaScript)";
  if (s.initImage) return { id: "openai-sdk", label, unavailable: "OpenAI's generations endpoint takes no starting image." };
  const body = JSON.stringify(openAiBody(s), null, 2).replace(/\n/g, "\n  ");
  return {
    id: "openai-sdk",
    label,
    text: [
      `import OpenAI from "openai";`,
      ``,
      `const client = new OpenAI({ baseURL: ${JSON.stringify(`${base}/v1`)}, apiKey: process.env.EASEL_API_KEY });`,
      `// negative_prompt, steps, guidance_scale, scheduler and seed are Easel's fields beside OpenAI's.`,
      `const result = await client.images.generate(${body});`,
      `console.log(result.data.map((image) => image.url));`,
    ].join("\n"),
  };
}

function monica(s: Settings, m: Model, base: string): RequestText {
  const label = "Monica (curl)";
  const no = (why: string): RequestText => ({ id: "monica", label, unavailable: why });
  if (s.initImage) return no("Monica's image APIs take no starting image.");
  const size = `${s.width}x${s.height}`;
  const sizes = ["1024x1024", "1344x768", "768x1344"];
  const sdName = nameIn(m, { sdxl: "sdxl", sd3: "sd3", "sd3-medium": "sd3", "sd3.5-large": "sd3_5", "sd3.5": "sd3_5" });
  const pgName = nameIn(m, { "playground-v2.5": "playground-v2-5", "playground-v2-5": "playground-v2-5" });
  if (!sdName && !pgName) return no(`Monica names only sdxl, sd3, sd3_5 and playground-v2-5; ${m.id} is none of them.`);
  if (!sizes.includes(size)) return no(`Monica takes only the sizes ${sizes.join(", ")}.`);
  const seed = s.seed === null ? {} : { seed: s.seed };
  if (pgName) {
    if (s.scheduler) return no("Monica's Playground API has no sampler field; choose the model's own sampler.");
    if (s.steps > 50 || s.n > 4 || s.guidance > 30) return no("Monica's Playground API takes at most 50 steps, 4 images and guidance 30.");
    if (s.seed !== null && (s.seed < 1 || s.seed > 2147483647)) return no("Monica's Playground API takes seeds 1 to 2147483647.");
    const body = { model: pgName, prompt: s.prompt, ...(s.negativePrompt ? { negative_prompt: s.negativePrompt } : {}), count: s.n, size, step: s.steps, cfg_scale: s.guidance, ...seed };
    return { id: "monica", label, text: curl(base, "/v1/image/gen/playground", "bearer", body) };
  }
  if (s.seed !== null && (s.seed < 1 || s.seed > 4294967295)) return no("Monica takes seeds 1 to 4294967295.");
  if (sdName === "sdxl") {
    const scheduler = s.scheduler ? MONICA_SCHEDULERS[m.kind]?.[s.scheduler] : undefined;
    if (s.scheduler && !scheduler) return no(`Monica has no name for the sampler ${s.scheduler}.`);
    if (s.n > 4 || s.guidance < 1 || s.guidance > 50 || s.steps > 500) return no("Monica's sdxl takes 1-4 images, guidance 1-50, up to 500 steps.");
    const body = { model: "sdxl", prompt: s.prompt, ...(s.negativePrompt ? { negative_prompt: s.negativePrompt } : {}), size, num_inference_steps: s.steps, cfg_scale: s.guidance, num_outputs: s.n, ...(scheduler ? { scheduler } : {}), ...seed };
    return { id: "monica", label, text: curl(base, "/v1/image/gen/sd", "bearer", body) };
  }
  if (s.scheduler || s.n !== 1 || s.negativePrompt) return no(`Monica's ${sdName} takes one image, no sampler and no negative prompt.`);
  const maxSteps = sdName === "sd3" ? 28 : 50;
  if (s.steps > maxSteps || s.guidance > 20) return no(`Monica's ${sdName} takes up to ${maxSteps} steps and guidance 20.`);
  return { id: "monica", label, text: curl(base, "/v1/image/gen/sd", "bearer", { model: sdName, prompt: s.prompt, size, steps: s.steps, cfg_scale: s.guidance, ...seed }) };
}

/** The body for Playground's `POST /api/models/external/v1` (the route that takes a starting image), or why not. */
export function playgroundBody(s: Settings, m: Model): { body: Record<string, unknown> } | { unavailable: string } {
  const no = (why: string) => ({ unavailable: why });
  const filter = nameIn(m, { "playground-v2.5": "Playground_v2.5", "playground-photorealism": "Photorealism", "playground-v3": "Playground_v3" });
  if (!filter) return no(`Playground names only Playground_v2.5, Photorealism and Playground_v3; ${m.id} is none of them.`);
  if (s.n !== 1) return no("Playground makes one image per request.");
  if (s.steps > 150 || s.guidance > 30) return no("Playground takes up to 150 steps and guidance 30.");
  if (s.seed !== null && (s.seed < 1 || s.seed > 65535)) return no("Playground takes seeds 1 to 65535.");
  const scheduler = s.scheduler ? PLAYGROUND_SCHEDULERS[m.kind]?.[s.scheduler] : undefined;
  if (s.scheduler && !scheduler) return no(`Playground has no name for the sampler ${s.scheduler}.`);
  const init = s.initImage ? { init_image: s.initImage.replace(/^data:[^,]*,/, ""), strength: s.strength } : {};
  return {
    body: {
      prompt: s.prompt,
      ...(s.negativePrompt ? { negative_prompt: s.negativePrompt } : {}),
      filter_model: filter,
      width: s.width,
      height: s.height,
      num_inference_steps: s.steps,
      guidance_scale: s.guidance,
      ...(scheduler ? { scheduler } : {}),
      ...(s.seed !== null ? { seed: s.seed } : {}),
      ...init,
    },
  };
}

function playground(s: Settings, m: Model, base: string): RequestText {
  const label = "Playground (curl)";
  const b = playgroundBody(s, m);
  if ("unavailable" in b) return { id: "playground", label, unavailable: b.unavailable };
  return { id: "playground", label, text: curl(base, "/api/models/external/v1", "bearer", b.body) };
}

function segmind(s: Settings, m: Model, base: string): RequestText {
  const label = "Segmind (curl)";
  const no = (why: string): RequestText => ({ id: "segmind", label, unavailable: why });
  if (!nameIn(m, { "playground-v2.5": "playground-v2.5" })) return no(`Segmind's route serves only playground-v2.5, not ${m.id}.`);
  if (s.initImage) return no("Segmind's route takes no starting image.");
  if (s.width !== 1024 || s.height !== 1024) return no("Segmind's route always makes 1024x1024.");
  if (s.scheduler) return no("Segmind's route has no sampler field; choose the model's own sampler.");
  if (s.n > 4 || s.steps < 20 || s.steps > 100 || s.guidance < 1 || s.guidance > 25) return no("Segmind takes 1-4 samples, 20-100 steps and guidance 1-25.");
  const body = { prompt: s.prompt, ...(s.negativePrompt ? { negative_prompt: s.negativePrompt } : {}), samples: s.n, num_inference_steps: s.steps, guidance_scale: s.guidance, ...(s.seed !== null ? { seed: s.seed } : {}), base64: true };
  return { id: "segmind", label, text: curl(base, "/v1/playground-v2.5", "x-api-key", body) };
}

/**
 * The body for AUTOMATIC1111's `POST /sdapi/v1/txt2img` or `/img2img` (any installed model, by
 * override_settings.sd_model_checkpoint; Easel's scheduler ids are accepted as sampler names), or why not.
 */
export function a1111Body(s: Settings, m: Model): { path: string; body: Record<string, unknown> } | { unavailable: string } {
  if (s.seed !== null && s.seed > 4294967295) return { unavailable: "A1111 takes seeds up to 4294967295." };
  if (s.n > 64) return { unavailable: "A1111 takes at most 64 images per batch." };
  const body: Record<string, unknown> = {
    prompt: s.prompt,
    ...(s.negativePrompt ? { negative_prompt: s.negativePrompt } : {}),
    width: s.width,
    height: s.height,
    steps: s.steps,
    cfg_scale: s.guidance,
    ...(s.scheduler ? { sampler_name: s.scheduler } : {}),
    seed: s.seed ?? -1,
    batch_size: s.n,
    override_settings: { sd_model_checkpoint: m.id },
  };
  if (!s.initImage) return { path: "/sdapi/v1/txt2img", body };
  return { path: "/sdapi/v1/img2img", body: { ...body, init_images: [s.initImage.replace(/^data:[^,]*,/, "")], denoising_strength: s.strength } };
}

function a1111(s: Settings, m: Model, base: string): RequestText {
  const label = "AUTOMATIC1111 (curl)";
  const b = a1111Body(s, m);
  if ("unavailable" in b) return { id: "a1111", label, unavailable: b.unavailable };
  return { id: "a1111", label, text: curl(base, b.path, "bearer", b.body) };
}

/** Every dialect's request for the settings; `base` is this server's origin. */
export function requestTexts(s: Settings, m: Model, base: string): RequestText[] {
  return [openAi(s, base), openAiSdk(s, base), monica(s, m, base), playground(s, m, base), segmind(s, m, base), a1111(s, m, base)];
}
