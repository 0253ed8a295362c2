/**
 * The playground page: the generate form (defaults and ranges from the chosen model), live progress and preview
 * frames over OpenAI's streaming endpoint, cancel, results, history, "Copy as request", and the API key.
 */
import { Api, ApiError, type Model } from "./api.ts";
import { $, h, mimeOf } from "./dom.ts";
import { History } from "./history.ts";
import { CopyAsRequest } from "./copy.ts";
import { a1111Body, openAiBody, type Settings } from "./requests.ts";
import { StartingImage } from "./starting-image.ts";

const KEY_STORAGE = "easel.apiKey";
/** Common sizes offered after the model's own default (kept only where the model accepts them). */
const COMMON_SIZES: [number, number][] = [
  [64, 64],
  [128, 128],
  [256, 256],
  [512, 512],
  [512, 768],
  [768, 512],
  [768, 768],
  [1024, 1024],
  [1344, 768],
  [768, 1344],
];
/** Preview frames asked for per generation (OpenAI's partial_images allows at most 3). */
const PREVIEWS = 3;

const el = {
  form: $<HTMLFormElement>("gen-form"),
  prompt: $<HTMLTextAreaElement>("prompt"),
  negative: $<HTMLTextAreaElement>("negative-prompt"),
  model: $<HTMLSelectElement>("model"),
  modelInfo: $("model-info"),
  size: $<HTMLSelectElement>("size"),
  width: $<HTMLInputElement>("width"),
  height: $<HTMLInputElement>("height"),
  steps: $<HTMLInputElement>("steps"),
  guidance: $<HTMLInputElement>("guidance"),
  sampler: $<HTMLSelectElement>("sampler"),
  seed: $<HTMLInputElement>("seed"),
  seedRandom: $<HTMLInputElement>("seed-random"),
  count: $<HTMLInputElement>("count"),
  strength: $<HTMLInputElement>("strength"),
  strengthValue: $<HTMLOutputElement>("strength-value"),
  generate: $<HTMLButtonElement>("generate"),
  cancel: $<HTMLButtonElement>("cancel"),
  error: $("error"),
  progress: $<HTMLProgressElement>("progress"),
  status: $("status"),
  preview: $<HTMLImageElement>("preview"),
  results: $("results"),
  credits: $("credits"),
  keyPanel: $("key-panel"),
  keyReason: $("key-reason"),
  keyForm: $<HTMLFormElement>("key-form"),
  keyInput: $<HTMLInputElement>("api-key"),
  keyForget: $<HTMLButtonElement>("key-forget"),
  keyChange: $<HTMLButtonElement>("key-change"),
  main: $("main"),
};

const api = new Api(localStorage.getItem(KEY_STORAGE));
let models: Model[] = [];
let running: AbortController | undefined;
const startingImage = new StartingImage(updateCopy, showError);
const copy = new CopyAsRequest((status) => {
  el.status.textContent = status;
});

const history = new History({
  api: () => api,
  reuse: (s) => {
    applySettings(s);
    el.prompt.focus();
    el.status.textContent = "Settings loaded from the history.";
  },
  showError,
  onCredits: showCredits,
});

function showError(e: unknown): void {
  if (e instanceof ApiError && (e.code === "E_AUTH_MISSING" || e.code === "E_AUTH_INVALID" || e.status === 401)) {
    askForKey(e.message);
    return;
  }
  el.error.textContent = e instanceof Error ? e.message : String(e);
  el.error.hidden = false;
}

function clearError(): void {
  el.error.hidden = true;
  el.error.textContent = "";
}

function showCredits(credits: string | null): void {
  const n = credits === null ? Number.NaN : Number(credits);
  el.credits.hidden = !Number.isFinite(n);
  if (Number.isFinite(n)) el.credits.textContent = `Credits left: ${n}`;
}

// --- API key ---------------------------------------------------------------------------------------------------

function askForKey(reason: string): void {
  el.keyReason.textContent = reason;
  el.keyPanel.hidden = false;
  el.main.hidden = true;
  el.keyInput.value = api.key ?? "";
  el.keyInput.focus();
}

el.keyForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = el.keyInput.value.trim();
  if (!key) return;
  localStorage.setItem(KEY_STORAGE, key);
  api.key = key;
  void start();
});
el.keyForget.addEventListener("click", () => {
  localStorage.removeItem(KEY_STORAGE);
  api.key = null;
  el.keyInput.value = "";
  void start();
});
el.keyChange.addEventListener("click", () => askForKey("Enter another API key, or forget the one kept here."));

// --- the form --------------------------------------------------------------------------------------------------

const currentModel = (): Model | undefined => models.find((m) => m.id === el.model.value);

/** The model's sizes: its default first, then common sizes it accepts. */
function sizesFor(m: Model): [number, number][] {
  const ok = ([w, h]: [number, number]) =>
    [w, h].every((v) => v >= m.limits.minSize && v <= m.limits.maxSize && v % m.limits.sizeMultiple === 0);
  const out: [number, number][] = [[m.defaults.width, m.defaults.height]];
  for (const s of COMMON_SIZES) if (ok(s) && !out.some(([w, h]) => w === s[0] && h === s[1])) out.push(s);
  return out;
}

/** Why the model cannot start from an image (undefined: it can). */
function img2imgReason(m: Model): string | undefined {
  return m.limits.img2img === false ? `${m.id} (${m.family}) has no img2img.` : undefined;
}

/** Ranges and choices of the chosen model; with `defaults`, its default values too. */
function applyModel(defaults: boolean): void {
  const m = currentModel();
  if (!m) return;
  const l = m.limits;
  el.modelInfo.textContent = [
    `${m.family}${m.backend === "local" ? "" : ` via ${m.backend}`}`,
    `default ${m.defaults.width}×${m.defaults.height}, ${m.defaults.steps} steps, guidance ${m.defaults.guidanceScale}`,
    m.description,
  ]
    .filter(Boolean)
    .join(" · ");
  for (const input of [el.width, el.height]) {
    input.min = String(l.minSize);
    input.max = String(l.maxSize);
    input.step = String(l.sizeMultiple);
  }
  el.steps.max = String(l.maxSteps);
  el.guidance.min = String(l.guidance.min);
  el.guidance.max = String(l.guidance.max);
  el.count.max = String(l.maxImages);
  el.negative.disabled = !l.negativePrompt;
  el.size.replaceChildren(
    ...sizesFor(m).map(([w, h], i) => new Option(`${w}×${h}${i === 0 ? " (model default)" : ""}`, `${w}x${h}`)),
    new Option("Other (width and height below)", "custom"),
  );
  const previous = el.sampler.value;
  el.sampler.replaceChildren(new Option(`Model default${m.defaults.scheduler ? ` (${m.defaults.scheduler})` : ""}`, ""), ...m.schedulers.map((s) => new Option(s, s)));
  if (m.schedulers.includes(previous)) el.sampler.value = previous;
  if (defaults) {
    el.width.value = String(m.defaults.width);
    el.height.value = String(m.defaults.height);
    el.steps.value = String(m.defaults.steps);
    el.guidance.value = String(m.defaults.guidanceScale);
    el.sampler.value = "";
    if (l.img2img !== false) el.strength.value = String(l.img2img.defaultStrength);
    el.strengthValue.value = el.strength.value;
  }
  syncSizePreset();
  startingImage.setUnavailable(img2imgReason(m));
  updateCopy();
}

function syncSizePreset(): void {
  const v = `${el.width.value}x${el.height.value}`;
  el.size.value = [...el.size.options].some((o) => o.value === v) ? v : "custom";
}

function settings(): Settings {
  const num = (i: HTMLInputElement) => (i.value.trim() === "" ? Number.NaN : Number(i.value));
  return {
    prompt: el.prompt.value,
    negativePrompt: el.negative.disabled ? "" : el.negative.value,
    model: el.model.value,
    width: num(el.width),
    height: num(el.height),
    steps: num(el.steps),
    guidance: num(el.guidance),
    scheduler: el.sampler.value,
    seed: el.seedRandom.checked ? null : num(el.seed),
    n: num(el.count),
    initImage: startingImage.value,
    strength: Number(el.strength.value),
  };
}

function applySettings(s: Partial<Settings>): void {
  if (s.model && models.some((m) => m.id === s.model)) {
    el.model.value = s.model;
    applyModel(true);
  }
  if (s.prompt !== undefined) el.prompt.value = s.prompt;
  if (s.negativePrompt !== undefined) el.negative.value = s.negativePrompt;
  if (s.width !== undefined) el.width.value = String(s.width);
  if (s.height !== undefined) el.height.value = String(s.height);
  if (s.steps !== undefined) el.steps.value = String(s.steps);
  if (s.guidance !== undefined) el.guidance.value = String(s.guidance);
  if (s.scheduler !== undefined) el.sampler.value = [...el.sampler.options].some((o) => o.value === s.scheduler) ? s.scheduler : "";
  if (s.n !== undefined) el.count.value = String(s.n);
  if (s.strength !== undefined) {
    el.strength.value = String(s.strength);
    el.strengthValue.value = el.strength.value;
  }
  if (s.seed !== undefined) {
    el.seedRandom.checked = s.seed === null;
    el.seed.disabled = s.seed === null;
    if (s.seed !== null) el.seed.value = String(s.seed);
  }
  syncSizePreset();
  updateCopy();
}

el.model.addEventListener("change", () => applyModel(true));
el.size.addEventListener("change", () => {
  if (el.size.value === "custom") return el.width.focus();
  const [w, h] = el.size.value.split("x");
  el.width.value = w;
  el.height.value = h;
  updateCopy();
});
for (const i of [el.width, el.height]) i.addEventListener("input", syncSizePreset);
el.seedRandom.addEventListener("change", () => {
  el.seed.disabled = el.seedRandom.checked;
  if (!el.seedRandom.checked) el.seed.focus();
});
el.strength.addEventListener("input", () => {
  el.strengthValue.value = el.strength.value;
});
el.form.addEventListener("input", updateCopy);
el.form.addEventListener("change", updateCopy);

function updateCopy(): void {
  const m = currentModel();
  if (m) copy.update(settings(), m);
}

// --- generate --------------------------------------------------------------------------------------------------

function setRunning(on: boolean): void {
  el.generate.disabled = on;
  el.cancel.disabled = !on;
  el.form.setAttribute("aria-busy", String(on));
}

function showResult(b64: string, format: string, seed: number | undefined, index: number): void {
  const src = `data:${mimeOf(format)};base64,${b64}`;
  const ext = format === "jpeg" ? "jpg" : format;
  const name = `easel-${seed ?? "image"}-${index + 1}.${ext}`;
  el.results.append(
    h(
      "figure",
      {},
      h("img", { src, alt: `Result ${index + 1}${seed !== undefined ? `, seed ${seed}` : ""}`, "data-testid": "result-image" }),
      h(
        "figcaption",
        {},
        h("span", { "data-testid": "result-seed" }, seed !== undefined ? `Seed ${seed}` : ""),
        h("a", { href: src, download: name }, "Download"),
      ),
    ),
  );
}

function validate(s: Settings, m: Model): string | undefined {
  if (!s.prompt.trim()) return "Write a prompt first.";
  for (const [name, v] of [
    ["Width", s.width],
    ["Height", s.height],
    ["Steps", s.steps],
    ["Guidance", s.guidance],
    ["Images", s.n],
  ] as const) {
    if (!Number.isFinite(v)) return `${name} must be a number.`;
  }
  if (s.seed !== null && !(Number.isInteger(s.seed) && s.seed >= 0)) return "The seed must be a whole number, 0 or more (or tick Random seed).";
  if (s.initImage && img2imgReason(m)) return img2imgReason(m);
  return undefined;
}

async function generate(): Promise<void> {
  const m = currentModel();
  if (!m || running) return;
  clearError();
  const s = settings();
  const invalid = validate(s, m);
  if (invalid) {
    showError(new Error(invalid));
    return;
  }
  running = new AbortController();
  const signal = running.signal;
  setRunning(true);
  el.results.replaceChildren();
  el.preview.hidden = true;
  el.progress.value = 0;
  el.progress.removeAttribute("value");
  el.status.textContent = "Waiting for the server…";
  const known = new Set<string>();
  for (const li of document.querySelectorAll<HTMLElement>("[data-testid=history-item]")) known.add(li.dataset.jobId ?? "");
  let images = 0;
  try {
    if (s.initImage) {
      await generateFromImage(s, m, signal);
    } else {
      const body = { ...requestBodyForStream(s), partial_images: PREVIEWS };
      await api.generateStream(body, signal, {
        onProgress(step, total) {
          el.progress.max = total;
          el.progress.value = step;
          el.status.textContent = `Step ${step} of ${total}`;
        },
        onPreview(b64, format) {
          el.preview.src = `data:${mimeOf(format)};base64,${b64}`;
          el.preview.hidden = false;
        },
        onImage(b64, format, seed) {
          showResult(b64, format, seed, images++);
        },
      });
    }
    el.preview.hidden = true;
    el.progress.max = 1;
    el.progress.value = 1;
    const seeds = [...el.results.querySelectorAll("[data-testid=result-seed]")].map((x) => x.textContent?.replace("Seed ", ""));
    el.status.textContent = `Done: ${el.results.childElementCount} image${el.results.childElementCount === 1 ? "" : "s"}, seed ${seeds.join(", ")}.`;
  } catch (e) {
    el.progress.max = 1;
    el.progress.value = 0;
    if (signal.aborted) {
      el.status.textContent = "Cancelled.";
      await confirmCancelled(known);
    } else {
      el.status.textContent = "Failed.";
      showError(e);
    }
  } finally {
    running = undefined;
    setRunning(false);
    await history.load();
  }
}

/** OpenAI's body for the settings, images as base64 (they arrive in the stream). */
function requestBodyForStream(s: Settings): Record<string, unknown> {
  const { response_format: _url, ...body } = openAiBody(s);
  return body;
}

/**
 * img2img through the AUTOMATIC1111 route (any installed model). It answers at the end, so progress and the preview
 * frame are read from its `GET /sdapi/v1/progress` while the request runs.
 */
async function generateFromImage(s: Settings, m: Model, signal: AbortSignal): Promise<void> {
  const a = a1111Body(s, m);
  if ("unavailable" in a) throw new Error(a.unavailable);
  let polling = true;
  const poll = (async () => {
    let lastImage: string | null = null;
    while (polling && !signal.aborted) {
      await new Promise((r) => setTimeout(r, 250));
      const p = await api.a1111Progress().catch(() => undefined);
      if (!p || !polling) continue;
      if (p.state.sampling_steps > 0 && p.state.sampling_step > 0) {
        el.progress.max = p.state.sampling_steps;
        el.progress.value = p.state.sampling_step;
        el.status.textContent = `Step ${p.state.sampling_step} of ${p.state.sampling_steps}`;
      }
      if (p.current_image && p.current_image !== lastImage) {
        lastImage = p.current_image;
        el.preview.src = `data:image/png;base64,${p.current_image}`;
        el.preview.hidden = false;
      }
    }
  })();
  try {
    const out = await api.a1111Generate(a.path, a.body, signal);
    for (const [i, b64] of out.images.entries()) showResult(b64, "png", out.seeds[i], i);
  } finally {
    polling = false;
    await poll;
  }
}

/** After a cancel: the job the server ran for this request, once it has stopped (its status shown as recorded). */
async function confirmCancelled(known: Set<string>): Promise<void> {
  for (let i = 0; i < 20; i++) {
    try {
      const page = await api.jobs(undefined, 5);
      const job = page.data.find((j) => !known.has(j.id));
      if (job && job.status !== "queued" && job.status !== "running") {
        el.status.textContent = `Cancelled: job ${job.id} is ${job.status}.`;
        return;
      }
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

el.form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  void generate();
});
// Ctrl+Enter (⌘+Enter) in the prompt generates, like a chat box.
el.prompt.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    void generate();
  }
});
el.cancel.addEventListener("click", () => {
  el.status.textContent = "Cancelling…";
  running?.abort();
});

// --- start -----------------------------------------------------------------------------------------------------

async function start(): Promise<void> {
  clearError();
  try {
    models = await api.models();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return askForKey(e.message);
    return showError(e);
  }
  el.keyPanel.hidden = true;
  el.main.hidden = false;
  el.keyChange.hidden = api.key === null;
  const previous = el.model.value;
  el.model.replaceChildren(...models.map((m) => new Option(`${m.id} (${m.family})`, m.id)));
  if (models.some((m) => m.id === previous)) el.model.value = previous;
  applyModel(true);
  if (models.length === 0) showError(new Error("This server has no models installed."));
  await history.load();
}

void start();
