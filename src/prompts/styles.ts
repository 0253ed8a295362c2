/**
 * Style presets: Playground's 36 `prompt_filter` names (specs/001), each a positive template that wraps the user's
 * prompt (`{prompt}` marks where it goes) and a negative prompt, written by the project for what the name says.
 * Presets change only the text that reaches the tokenizer; they never pick another model ("These do not use a
 * separate image model"). Configuration may add presets or replace these (config.prompts.styles).
 */
import { EaselError } from "../core/errors.ts";

export interface StylePreset {
  /** Wire name (`prompt_filter`), e.g. "cinematic". */
  id: string;
  /** The positive template; `{prompt}` is replaced by the user's prompt. */
  prompt: string;
  /** Joined before the user's own negative prompt. */
  negativePrompt: string;
}

const LOW_QUALITY = "blurry, low quality, jpeg artifacts, watermark, text";

/** The built-in presets, in the page's order. */
export const BUILTIN_STYLES: readonly StylePreset[] = [
  { id: "cartoon", prompt: "cartoon illustration of {prompt}, bold outlines, flat cel shading, bright colors", negativePrompt: `photo, photorealistic, realistic, ${LOW_QUALITY}` },
  { id: "vibrant_glass", prompt: "{prompt}, made of vibrant translucent glass, refraction, glossy highlights, colorful caustics", negativePrompt: `matte, dull colors, opaque, ${LOW_QUALITY}` },
  { id: "dreamy_stickers", prompt: "die-cut sticker of {prompt}, dreamy pastel colors, white border, soft glow, kawaii", negativePrompt: `photo, realistic, dark, cluttered background, ${LOW_QUALITY}` },
  { id: "ultra_lighting", prompt: "{prompt}, dramatic studio lighting, rim light, volumetric light, high dynamic range, highly detailed", negativePrompt: `flat lighting, underexposed, dull, ${LOW_QUALITY}` },
  { id: "watercolor", prompt: "watercolor painting of {prompt}, soft washes, bleeding pigments, paper texture, loose brushwork", negativePrompt: `photo, 3d render, sharp digital lines, ${LOW_QUALITY}` },
  { id: "macro_realism", prompt: "macro photograph of {prompt}, extreme close detail, shallow depth of field, 100mm macro lens, photorealistic", negativePrompt: `illustration, cartoon, painting, out of focus subject, ${LOW_QUALITY}` },
  { id: "delicate_detail", prompt: "{prompt}, intricate delicate details, fine linework, ornate, elegant, soft light", negativePrompt: `crude, simple, rough, ${LOW_QUALITY}` },
  { id: "radiant_symmetry", prompt: "{prompt}, radiant symmetrical composition, mandala-like balance, glowing center, vivid colors", negativePrompt: `asymmetric, cluttered, dull, ${LOW_QUALITY}` },
  { id: "lush_illustration", prompt: "lush storybook illustration of {prompt}, rich saturated colors, painterly, detailed foliage", negativePrompt: `photo, monochrome, sparse, ${LOW_QUALITY}` },
  { id: "saturated_space", prompt: "{prompt}, in deep space, saturated nebula colors, stars, cosmic glow, sci-fi art", negativePrompt: `daylight, earth landscape, desaturated, ${LOW_QUALITY}` },
  { id: "neon_mecha", prompt: "{prompt}, neon-lit mecha, giant robot armor plating, cyberpunk city at night, glowing neon accents", negativePrompt: `organic, daylight, pastoral, ${LOW_QUALITY}` },
  { id: "ethereal_low_poly", prompt: "ethereal low poly 3d render of {prompt}, faceted geometry, soft gradients, misty light", negativePrompt: `photo, high poly, noisy texture, ${LOW_QUALITY}` },
  { id: "warm_box", prompt: "{prompt}, inside a cozy diorama box, warm ambient light, miniature scene, tilt-shift", negativePrompt: `cold light, vast open space, ${LOW_QUALITY}` },
  { id: "cinematic", prompt: "cinematic film still of {prompt}, anamorphic lens, shallow depth of field, film grain, color graded", negativePrompt: `cartoon, illustration, amateur snapshot, ${LOW_QUALITY}` },
  { id: "cinematic_warm", prompt: "cinematic film still of {prompt}, warm golden hour light, orange and teal grade, film grain", negativePrompt: `cold colors, blue cast, cartoon, ${LOW_QUALITY}` },
  { id: "wasteland", prompt: "{prompt}, post-apocalyptic wasteland, dust, rusted ruins, harsh sun, desolate", negativePrompt: `lush, clean, green, modern city, ${LOW_QUALITY}` },
  { id: "flat_palette", prompt: "flat vector illustration of {prompt}, limited color palette, simple shapes, minimal shading", negativePrompt: `photo, gradients, 3d, texture noise, ${LOW_QUALITY}` },
  { id: "ominous_escape", prompt: "{prompt}, ominous atmosphere, dark fog, distant light at the end of a path, tension, moody", negativePrompt: `cheerful, bright, cartoon, ${LOW_QUALITY}` },
  { id: "spielberg", prompt: "{prompt}, blockbuster movie still, 1980s adventure film look, backlit haze, sense of wonder, 35mm", negativePrompt: `cartoon, flat lighting, ${LOW_QUALITY}` },
  { id: "royalistic", prompt: "{prompt}, regal baroque portrait style, gold ornaments, velvet, oil painting, royal court", negativePrompt: `modern, casual, minimal, ${LOW_QUALITY}` },
  { id: "masterpiece", prompt: "masterpiece, best quality, {prompt}, highly detailed, award-winning composition", negativePrompt: `worst quality, amateur, ${LOW_QUALITY}` },
  { id: "wall_art", prompt: "{prompt}, decorative wall art print, balanced composition, clean background, gallery poster", negativePrompt: `cluttered, snapshot, ${LOW_QUALITY}` },
  { id: "haze", prompt: "{prompt}, soft atmospheric haze, diffused light, muted colors, dreamy depth", negativePrompt: `harsh contrast, crisp clear air, ${LOW_QUALITY}` },
  { id: "black_and_white_3d", prompt: "black and white 3d render of {prompt}, monochrome, clay material, studio lighting, soft shadows", negativePrompt: `color, colorful, saturated, ${LOW_QUALITY}` },
  { id: "cinematic_dimensions", prompt: "cinematic wide shot of {prompt}, epic scale, layered depth, foreground and background, volumetric light", negativePrompt: `flat, cramped framing, cartoon, ${LOW_QUALITY}` },
  { id: "futuristic_illumination", prompt: "{prompt}, futuristic illumination, glowing light strips, holographic highlights, sleek sci-fi design", negativePrompt: `rustic, medieval, dim, ${LOW_QUALITY}` },
  { id: "photorealistic", prompt: "photograph of {prompt}, photorealistic, natural light, sharp focus, 50mm lens", negativePrompt: `illustration, painting, cartoon, 3d render, ${LOW_QUALITY}` },
  { id: "cinematic_cold", prompt: "cinematic film still of {prompt}, cold blue color grade, overcast light, film grain", negativePrompt: `warm colors, orange cast, cartoon, ${LOW_QUALITY}` },
  { id: "cute_low_poly_3d", prompt: "cute low poly 3d model of {prompt}, rounded chunky shapes, pastel colors, isometric, soft lighting", negativePrompt: `realistic, scary, high poly, ${LOW_QUALITY}` },
  { id: "nikon_mode", prompt: "photo of {prompt}, shot on a Nikon DSLR, 85mm f/1.8, natural colors, crisp detail", negativePrompt: `illustration, painting, cartoon, ${LOW_QUALITY}` },
  { id: "yellow_fog", prompt: "{prompt}, thick yellow fog, sodium light, low visibility, mysterious silhouettes", negativePrompt: `clear sky, crisp air, blue tones, ${LOW_QUALITY}` },
  { id: "moody_impressions", prompt: "impressionist painting of {prompt}, moody palette, visible brush strokes, dusk light", negativePrompt: `photo, sharp edges, 3d render, ${LOW_QUALITY}` },
  { id: "portrait", prompt: "portrait of {prompt}, head and shoulders, soft key light, bokeh background, detailed face", negativePrompt: `full body, wide shot, distorted face, ${LOW_QUALITY}` },
  { id: "hypersonic", prompt: "{prompt}, hypersonic speed, motion blur streaks, shock waves, dynamic angle", negativePrompt: `static, still, calm, ${LOW_QUALITY}` },
  { id: "closeup", prompt: "close-up of {prompt}, tight framing, fine surface detail, shallow depth of field", negativePrompt: `wide shot, distant, ${LOW_QUALITY}` },
  { id: "old-timey", prompt: "old-timey vintage photograph of {prompt}, sepia tone, early 1900s, film scratches, soft vignette", negativePrompt: `modern, digital, saturated colors, ${LOW_QUALITY}` },
];

/** Where the prompt goes in a template. */
const SLOT = "{prompt}";

/** Presets by id: the built-in ones, then configured ones (a configured id replaces a built-in one). */
export interface StyleCatalog {
  list(): StylePreset[];
  get(id: string): StylePreset | undefined;
}

export function createStyleCatalog(extra: readonly StylePreset[] = []): StyleCatalog {
  const byId = new Map<string, StylePreset>();
  for (const s of [...BUILTIN_STYLES, ...extra]) {
    if (!s.prompt.includes(SLOT)) {
      throw new EaselError("E_INPUT_INVALID", `style "${s.id}": its prompt template must contain ${SLOT}`, { param: `prompts.styles.${s.id}` });
    }
    byId.set(s.id, s);
  }
  return { list: () => [...byId.values()], get: (id) => byId.get(id) };
}

/** The prompts a preset makes of the user's: the template around the prompt, the preset's negative before the user's. */
export function applyStyle(style: StylePreset, prompt: string, negativePrompt: string | undefined): { prompt: string; negativePrompt: string } {
  const positive = style.prompt.split(SLOT).join(prompt.trim());
  const negative = [style.negativePrompt, negativePrompt?.trim()].filter((s) => s).join(", ");
  return { prompt: positive, negativePrompt: negative };
}
