/**
 * Generates every evaluation prompt (eval-prompts.json) through Easel's engine at the model's default settings,
 * reads each image back with the evaluator and prints per-attribute accuracy, confusion tables and timing.
 *
 *   node --import tsx tools/train-default-model/evaluate.ts [--model models/easel-shapes] [--limit N]
 *     [--steps N] [--guidance G] [--threads N] [--precision fp32|int8] [--sheet out.png] [--json report.json]
 *   node --import tsx tools/train-default-model/evaluate.ts --images recon.rgb
 *
 * --images scores 128x128 RGB images given in a file instead of generating them (the items' images in order, uint8,
 * no header): vae_roundtrip.py writes the VAE's reconstructions of the evaluation scenes that way.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { importExport, REPO_ROOT } from "./easel-api.ts";
import { ATTRIBUTES, type Attribute, readScene, type Scene, scoreReading } from "./evaluator.ts";

const HERE = import.meta.dirname;
const { values: o } = parseArgs({
  options: {
    model: { type: "string", default: join(REPO_ROOT, "models/easel-shapes") },
    limit: { type: "string" },
    steps: { type: "string" },
    guidance: { type: "string" },
    threads: { type: "string", default: "2" },
    /** The engine's denoiser precision (engine.precision): fp32, or the opt-in int8 path. */
    precision: { type: "string", default: "fp32" },
    sheet: { type: "string" },
    json: { type: "string" },
    prompts: { type: "string", default: join(HERE, "eval-prompts.json") },
    images: { type: "string" },
  },
});

interface Item {
  prompt: string;
  seed: number;
  scene: Scene;
}
interface Image {
  width: number;
  height: number;
  rgb: Uint8Array;
}
interface EngineLike {
  run(modelDir: string, params: Record<string, unknown>): Promise<{ images: Image[] }>;
  close(): Promise<void>;
}

const items = (JSON.parse(readFileSync(o.prompts, "utf8")) as { items: Item[] }).items.slice(0, o.limit ? Number(o.limit) : undefined);
if (o.precision !== "fp32" && o.precision !== "int8") throw new Error(`--precision must be fp32 or int8, got ${o.precision}`);
const modelDir = resolve(o.model);

/** Images read from --images: the items' 128x128 RGB pictures in order. */
function givenImages(file: string): EngineLike {
  const buf = readFileSync(file);
  const size = 128 * 128 * 3;
  if (buf.length < items.length * size) throw new Error(`${file}: ${buf.length} bytes, fewer than ${items.length} 128x128 RGB images`);
  let calls = 0;
  return {
    run: async () => {
      const k = calls++ - 1; // the warm-up call below takes no image
      const rgb = k < 0 ? new Uint8Array(size) : new Uint8Array(buf.buffer, buf.byteOffset + k * size, size);
      return { images: [{ width: 128, height: 128, rgb }] };
    },
    close: async () => {},
  };
}

const engine: EngineLike = o.images
  ? givenImages(o.images)
  : new (await importExport<new (rt: Record<string, unknown>) => EngineLike>("Engine"))({
      executionProvider: "cpu",
      intraOpThreads: Number(o.threads),
      cacheDir: join(tmpdir(), "easel-shapes-eval-cache"),
      precision: o.precision,
    });

const pairs: Record<Attribute, [string, string][]> = { background: [], colour: [], shape: [], size: [], position: [] };
let two = 0;
let twoOk = 0;
let countOk = 0;
const times: number[] = [];
const thumbs: Image[] = [];
const failures: string[] = [];
try {
  // Warm-up: graph build and session creation are not part of a warm generation.
  await engine.run(modelDir, { prompt: "a red circle", n: 1, seed: 0 });
  for (const [i, it] of items.entries()) {
    const params: Record<string, unknown> = { prompt: it.prompt, n: 1, seed: it.seed };
    if (o.steps) params.steps = Number(o.steps);
    if (o.guidance) params.guidanceScale = Number(o.guidance);
    const t0 = performance.now();
    const out = await engine.run(modelDir, params);
    times.push(performance.now() - t0);
    const img = out.images[0];
    const s = scoreReading(it.scene, readScene(img.rgb, img.width, img.height));
    for (const a of ATTRIBUTES) pairs[a].push(...s.pairs[a]);
    if (s.twoObject !== undefined) {
      two++;
      if (s.twoObject) twoOk++;
    }
    if (s.count[0] === s.count[1]) countOk++;
    const wrong = ATTRIBUTES.flatMap((a) => s.pairs[a].filter(([w, g]) => w !== g).map(([w, g]) => `${a} ${w}->${g}`));
    if (wrong.length) failures.push(`${JSON.stringify(it.prompt)}: ${wrong.join(", ")}`);
    if (thumbs.length < 64) thumbs.push(img);
    if ((i + 1) % 50 === 0) console.error(`${i + 1}/${items.length} (${(times.reduce((a, b) => a + b, 0) / times.length).toFixed(0)} ms/image)`);
  }
} finally {
  await engine.close();
}

const pct = (a: number, b: number) => (b ? ((100 * a) / b).toFixed(1) : "n/a");
const report: Record<string, unknown> = { model: modelDir, prompts: items.length };
console.log(`easel-shapes evaluation: ${items.length} prompts, ${o.images ? `images ${resolve(o.images)}` : `model ${modelDir}`}`);
const sorted = [...times].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)];
if (!o.images) console.log(`warm generation time: median ${median.toFixed(0)} ms, mean ${(times.reduce((a, b) => a + b, 0) / times.length).toFixed(0)} ms per image (${o.threads} threads)`);
report.medianMs = median;
for (const a of ATTRIBUTES) {
  const ok = pairs[a].filter(([w, g]) => w === g).length;
  console.log(`${a.padEnd(10)} ${pct(ok, pairs[a].length).padStart(5)}%  (${ok}/${pairs[a].length})`);
  report[a] = ok / pairs[a].length;
}
console.log(`two objects ${pct(twoOk, two).padStart(5)}%  (${twoOk}/${two}: both colour+shape+position right, exactly two found)`);
console.log(`count      ${pct(countOk, items.length).padStart(5)}%  (${countOk}/${items.length}: number of objects found = asked)`);
report.twoObject = two ? twoOk / two : null;
report.count = countOk / items.length;

for (const a of ATTRIBUTES) {
  const labels = [...new Set(pairs[a].flatMap(([w, g]) => [w, g]))].sort((x, y) => (x === "none" ? 1 : y === "none" ? -1 : x.localeCompare(y)));
  const m = new Map<string, number>();
  for (const [w, g] of pairs[a]) m.set(`${w}|${g}`, (m.get(`${w}|${g}`) ?? 0) + 1);
  const wcol = Math.max(...labels.map((l) => l.length), 8) + 1;
  console.log(`\nconfusion: ${a} (rows expected, columns read back)`);
  console.log(" ".repeat(wcol) + labels.map((l) => l.slice(0, 6).padStart(7)).join(""));
  for (const w of labels) {
    if (!pairs[a].some(([x]) => x === w)) continue;
    console.log(w.padEnd(wcol) + labels.map((g) => String(m.get(`${w}|${g}`) ?? "").padStart(7)).join(""));
  }
}
console.log(`\nfirst failures:\n${failures.slice(0, 25).join("\n")}`);
report.failures = failures;

if (o.json) {
  mkdirSync(dirname(resolve(o.json)), { recursive: true });
  writeFileSync(o.json, `${JSON.stringify(report, null, 1)}\n`);
}
if (o.sheet && thumbs.length) {
  const w = thumbs[0].width;
  const cols = 8;
  const rows = Math.ceil(thumbs.length / cols);
  const sheet = Buffer.alloc(cols * rows * w * w * 3);
  thumbs.forEach((t, k) => {
    const ox = (k % cols) * w;
    const oy = Math.floor(k / cols) * w;
    for (let y = 0; y < w; y++) Buffer.from(t.rgb.buffer, t.rgb.byteOffset + y * w * 3, w * 3).copy(sheet, ((oy + y) * cols * w + ox) * 3);
  });
  await sharp(sheet, { raw: { width: cols * w, height: rows * w, channels: 3 } }).png().toFile(o.sheet);
  console.log(`contact sheet: ${o.sheet} (first ${thumbs.length} prompts)`);
}
