/**
 * `easel generate`: one pipeline run from the command line. The parity flags (--init-latents, --step-noise,
 * --dump-latents) read and write the reference tensor format, so any run can be compared with diffusers.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, extname, join, resolve } from "node:path";
import { SingleBar } from "cli-progress";
import { Command, InvalidArgumentError, Option } from "commander";
import sharp from "sharp";
import { BUILTIN_MODEL } from "../config/builtin-model.ts";
import { configPaths, loadConfig } from "../config/index.ts";
import { EaselError } from "../core/errors.ts";
import { checkModelLimits } from "../core/limits.ts";
import type { GenerationRequest } from "../core/types.ts";
import { extractLoraTags } from "../dialects/_shared/lora-fields.ts";
import { resolveSchedulerName } from "../dialects/_shared/sampler-names.ts";
import { Engine } from "../engine/engine.ts";
import { checkLoraScale, resolveLora } from "../models/components/lora.ts";
import { toPipelineParams } from "../models/pipeline/request.ts";
import { decodeInitImage } from "../providers/local/index.ts";
import { readRefFloat32, writeRefTensor } from "../tensor/io.ts";
import { randomSeed } from "../tensor/rng.ts";
import { enginePrecision } from "./compose.ts";

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got "${v}"`);
    return n;
  };
}

function num(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
    return n;
  };
}

interface GenerateOptions {
  model: string;
  prompt: string;
  negativePrompt?: string;
  prompt2?: string;
  negativePrompt2?: string;
  prompt3?: string;
  negativePrompt3?: string;
  steps?: number;
  guidance?: number;
  guidanceRescale?: number;
  scheduler?: string;
  width?: number;
  height?: number;
  seed?: number;
  initLatents?: string;
  stepNoise?: string;
  initImage?: string;
  strength?: number;
  clipSkip?: number;
  maxSequenceLength?: number;
  t5: boolean;
  t5Int8?: boolean;
  precision?: "fp32" | "int8" | "bf16";
  n: number;
  output: string;
  dumpLatents?: string;
  dataDir?: string;
  threads?: number;
  executionProvider?: "cpu" | "cuda";
  progress: boolean;
  lora: string[];
  /** Set from the config: where `--lora NAME` and `<lora:NAME:S>` in the prompt look. */
  lorasDir?: string;
}

/** Output file names: out.png for one image; out_0.png, out_1.png, ... for several. */
export function outputPaths(output: string, n: number): string[] {
  if (n === 1) return [output];
  const ext = extname(output);
  const stem = output.slice(0, output.length - ext.length);
  return Array.from({ length: n }, (_, i) => `${stem}_${i}${ext}`);
}

/** Reads an init image; without --width/--height the output takes its size rounded down to a multiple of 8. */
async function loadInitImage(file: string, width: number | undefined, height: number | undefined) {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    throw new EaselError("E_INPUT_INVALID", `cannot read init image ${file}`, { param: "init-image" });
  }
  const meta = await sharp(bytes).metadata().catch(() => ({ width: undefined, height: undefined }));
  if (!meta.width || !meta.height) throw new EaselError("E_INPUT_INVALID", `cannot read image ${file}`, { param: "init-image" });
  return decodeInitImage(bytes, width ?? meta.width - (meta.width % 8), height ?? meta.height - (meta.height % 8));
}

export function generateCommand(): Command {
  return new Command("generate")
    .description("generate images from a diffusers checkpoint directory")
    .option("--model <dir>", `diffusers checkpoint directory (model_index.json); default: the built-in ${BUILTIN_MODEL.id}`, BUILTIN_MODEL.dir)
    .requiredOption("--prompt <text>", "prompt")
    .option("--negative-prompt <text>", "negative prompt")
    .option("--prompt-2 <text>", "SDXL/SD3: prompt for the second text encoder (default: --prompt)")
    .option("--negative-prompt-2 <text>", "SDXL/SD3: negative prompt for the second text encoder")
    .option("--prompt-3 <text>", "SD3: prompt for T5 (default: --prompt)")
    .option("--negative-prompt-3 <text>", "SD3: negative prompt for T5")
    .option("--steps <n>", "denoising steps (default: the model's)", int("--steps"))
    .option("--guidance <g>", "classifier-free guidance scale; <= 1 disables guidance", num("--guidance"))
    .option("--guidance-rescale <r>", "rescale guided prediction (0..1)", num("--guidance-rescale"))
    .option("--scheduler <name>", "scheduler: an Easel id (euler_a, dpmpp_2m_karras, ...) or a Playground/Monica name")
    .option("--width <px>", "image width, a multiple of 8", int("--width"))
    .option("--height <px>", "image height, a multiple of 8", int("--height"))
    .addOption(
      new Option("--seed <n>", "seed of the torch-compatible CPU generator; -1 or absent: random").argParser(int("--seed")).conflicts("initLatents"),
    )
    .option("--init-latents <file>", "unit-normal initial latents in the reference tensor format (.bin + .json)")
    .option("--step-noise <file>", "per-step scheduler noise in the reference tensor format (replayed in order)")
    .option("--init-image <file>", "img2img: start from this image")
    .option("--strength <s>", "img2img: how much of the schedule to run (0..1]", num("--strength"))
    .option("--clip-skip <n>", "SD1.x: skip the last n CLIP layers", int("--clip-skip"))
    .option("--max-sequence-length <n>", "SD3: T5 prompt length in tokens (default 256, at most 512)", int("--max-sequence-length"))
    .option("--no-t5", "SD3: skip the T5 text encoder (zeros in its place)")
    .option("--t5-int8", "SD3: run T5 with weight-only int8 linear layers (less memory, slightly different results; reported as a warning)")
    .addOption(
      new Option("--precision <p>", "denoiser precision: fp32 (exact) or int8 (faster on AVX-512 VNNI, slightly different results; reported as a warning)").choices([
        "fp32",
        "int8",
        "bf16",
      ]),
    )
    .option("-n, --n <count>", "images to generate", int("-n"), 1)
    .option("-o, --output <file>", "output PNG (several images: out_0.png, out_1.png, ...)", "out.png")
    .option("--dump-latents <dir>", "write final_latents.bin/.json (before VAE decode) to this directory")
    .option("--data-dir <dir>", "data directory (graph cache)")
    .option("--threads <n>", "ONNX Runtime intra-op threads (default: all cores)", int("--threads"))
    .addOption(new Option("--execution-provider <ep>", "ONNX Runtime execution provider").choices(["cpu", "cuda"]))
    .option("--no-progress", "no progress bar")
    .option("--lora <name_or_file:scale>", "apply a LoRA: a name from <models>/loras or a .safetensors path, scale after the last ':' (default 1); repeatable", (v: string, prev: string[]) => [...prev, v], [])
    .action(async (o: GenerateOptions) => {
      const config = loadConfig({ flags: { ...(o.dataDir ? { dataDir: o.dataDir } : {}), ...(o.precision ? { engine: { precision: o.precision } } : {}) } });
      const engine = new Engine({
        executionProvider: o.executionProvider ?? config.engine.executionProvider,
        intraOpThreads: o.threads ?? (config.engine.intraOpThreads || cpus().length),
        cacheDir: configPaths(config).cacheDir,
        t5Quantization: o.t5Int8 ? "int8" : config.engine.t5Quantization,
        precision: enginePrecision(config),
      });
      try {
        await runGenerate(engine, { ...o, lorasDir: join(configPaths(config).modelsDir, "loras") });
      } finally {
        await engine.close();
      }
    });
}

/** `--lora NAME_OR_FILE[:SCALE]`: a path (has a "/" or ends in .safetensors) or a name in the LoRA folder. */
export function cliLora(value: string, lorasDir: string): { file: string; scale: number } {
  const m = /^(.*?)(?::(-?[0-9.eE+-]+))?$/.exec(value)!;
  const target = m[1];
  const scale = checkLoraScale(m[2] === undefined ? 1 : Number(m[2]), "--lora");
  if (target.includes("/") || target.endsWith(".safetensors")) {
    if (!existsSync(target)) throw new EaselError("E_INPUT_INVALID", `--lora: ${target} does not exist`, { param: "--lora" });
    return { file: resolve(target), scale };
  }
  return { file: resolveLora(lorasDir, target, "--lora"), scale };
}

async function runGenerate(engine: Engine, o: GenerateOptions): Promise<void> {
  const modelDir = resolve(o.model);
  const desc = await engine.describe(modelDir);
  const seed = o.seed === undefined || o.seed === -1 ? randomSeed() : o.seed;
  const scheduler = o.scheduler === undefined ? undefined : resolveSchedulerName(o.scheduler, desc.kind);
  const initImage = o.initImage ? await loadInitImage(o.initImage, o.width, o.height) : undefined;
  // The request a client would send, translated to pipeline parameters exactly as the server does.
  const req: GenerationRequest = {
    model: modelDir,
    prompt: o.prompt,
    negativePrompt: o.negativePrompt,
    prompt2: o.prompt2,
    negativePrompt2: o.negativePrompt2,
    prompt3: o.prompt3,
    negativePrompt3: o.negativePrompt3,
    n: o.n,
    width: o.width ?? initImage?.width ?? desc.defaults.width,
    height: o.height ?? initImage?.height ?? desc.defaults.height,
    steps: o.steps,
    guidanceScale: o.guidance,
    guidanceRescale: o.guidanceRescale,
    scheduler: scheduler?.id,
    seed,
    strength: o.strength,
    clipSkip: o.clipSkip,
    maxSequenceLength: o.maxSequenceLength,
    useT5: o.t5 === false ? false : undefined,
    output: { format: "png" },
  };
  checkModelLimits(req, desc.defaults, desc.limits, initImage !== undefined);
  const tags = extractLoraTags(req.prompt);
  req.prompt = tags.prompt;
  const loras = [...o.lora.map((v) => cliLora(v, o.lorasDir ?? "")), ...tags.loras.map((l) => ({ file: resolveLora(o.lorasDir ?? "", l.name, "prompt"), scale: checkLoraScale(l.scale, "prompt") }))];
  const params = toPipelineParams(req, { seed, initImage, loras });
  if (o.initLatents) params.initLatents = readRefFloat32(o.initLatents).data;
  if (o.stepNoise) params.stepNoise = readRefFloat32(o.stepNoise).data;
  if (scheduler?.warning) console.error(`warning: ${scheduler.warning.message}`);

  const bar = o.progress && process.stderr.isTTY ? new SingleBar({ format: "{bar} {value}/{total} steps | {eta}s left" }) : undefined;
  let started = false;
  const out = await engine.run(modelDir, params, {
    onStep: (step, total) => {
      if (!bar) return;
      if (!started) {
        bar.start(total, 0);
        started = true;
      }
      bar.update(step);
    },
  });
  bar?.stop();

  const files = outputPaths(o.output, out.images.length);
  for (const [i, img] of out.images.entries()) {
    mkdirSync(dirname(resolve(files[i])), { recursive: true });
    await sharp(img.rgb, { raw: { width: img.width, height: img.height, channels: 3 } }).png().toFile(files[i]);
  }
  if (o.dumpLatents) {
    mkdirSync(o.dumpLatents, { recursive: true });
    writeRefTensor(join(o.dumpLatents, "final_latents"), { shape: out.latentShape, data: out.latents });
  }
  for (const w of out.warnings) console.error(`warning: ${w.message}`);
  console.log(JSON.stringify({ seed: out.seed, family: desc.family, files }));
}
