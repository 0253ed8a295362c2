/**
 * An ImageService test double for the HTTP tests: real keys and balances in memory, real image encoding (solid
 * colours at the requested size and format, through sharp), stored images behind random tokens, preview events,
 * and a record of every call, so a test can assert that a rejected request generated and charged nothing.
 */

import { createHash, randomBytes } from "node:crypto";
import sharp from "sharp";
import { EaselError } from "../../src/core/errors.ts";
import type { ImageService, JobRecord, Principal, RequestContext } from "../../src/core/image-service.ts";
import { checkModelLimits } from "../../src/core/limits.ts";
import type { GeneratedImage, GenerationRequest, GenerationResult, ModelInfo } from "../../src/core/types.ts";
import { familyKind, familyLimits } from "../helpers/models.ts";

export interface FakeOptions {
  /** API key -> starting balance (null = unlimited). */
  keys?: Record<string, number | null>;
  /** Serve without keys (authenticate(undefined) succeeds). */
  open?: boolean;
  models?: ModelInfo[];
  /** Resolves before generate() produces images: lets a test hold a generation in flight. */
  gate?: () => Promise<void>;
  /** Throw this from generate() after the checks (to test mid-stream failures). */
  failWith?: EaselError;
  /** Life of a stored image's URL token (default 3600 s). */
  fileTtlSeconds?: number;
}

export interface GenerateCall {
  req: GenerationRequest;
  ctx: RequestContext;
}

export function model(id: string, family: string, aliases: string[] = [], w = 1024, h = 1024): ModelInfo {
  return {
    id,
    family,
    kind: familyKind(family),
    backend: "local",
    aliases,
    defaults: { width: w, height: h, steps: 30, guidanceScale: 5 },
    limits: familyLimits(family),
    created: 1_700_000_000,
  };
}

export const DEFAULT_MODELS: ModelInfo[] = [
  model("playground-v2.5", "playground", ["playground-v2-5"]),
  model("sdxl", "sdxl"),
  model("sd3", "sd3"),
  model("sd3.5-large", "sd3"),
  model("sd15", "sd15", [], 512, 512),
];

const MIME = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" } as const;

export class FakeImageService implements ImageService {
  readonly calls: GenerateCall[] = [];
  readonly charges: { keyId: string | null; credits: number }[] = [];
  readonly authAttempts: (string | undefined)[] = [];
  private readonly balances = new Map<string, number | null>();
  private readonly files = new Map<string, { bytes: Uint8Array; mime: string; expiresAt: number }>();
  private readonly models: ModelInfo[];
  private jobs = 0;

  constructor(private readonly opts: FakeOptions = {}) {
    for (const [k, v] of Object.entries(opts.keys ?? { "sk-test": 100 })) this.balances.set(k, v);
    this.models = opts.models ?? DEFAULT_MODELS;
  }

  async authenticate(apiKey: string | undefined): Promise<Principal> {
    this.authAttempts.push(apiKey);
    if (apiKey === undefined) {
      if (this.opts.open) return { keyId: null, name: "open", remainingCredits: null };
      throw new EaselError("E_AUTH_MISSING", "You didn't provide an API key.");
    }
    if (!this.balances.has(apiKey)) throw new EaselError("E_AUTH_INVALID", "Incorrect API key provided.");
    return { keyId: apiKey, name: apiKey, remainingCredits: this.balances.get(apiKey) ?? null };
  }

  async generate(req: GenerationRequest, ctx: RequestContext): Promise<GenerationResult> {
    const info = this.findModel(req.model);
    if (!info) throw new EaselError("E_MODEL_NOT_FOUND", `model "${req.model}" is not installed`, { param: "model" });
    // Refused before admission, as the job service refuses it: not a call.
    checkModelLimits(req, info.defaults, info.limits, req.initImage !== undefined);
    this.calls.push({ req, ctx });
    const keyId = ctx.principal.keyId;
    const balance = keyId === null ? null : (this.balances.get(keyId) ?? null);
    if (balance !== null && balance < req.n) {
      throw new EaselError("E_CREDITS_INSUFFICIENT", `this request needs ${req.n} credits, ${balance} left`);
    }
    const jobId = `job_${++this.jobs}`;
    const seed = req.seed ?? Number.parseInt(randomBytes(4).toString("hex"), 16);
    for (let i = 0; i < (req.partialImages ?? 0); i++) {
      const image = await this.encode(req, seed, 64, 64, i);
      ctx.onEvent?.({ type: "preview", jobId, index: i, step: i + 1, image });
    }
    await this.opts.gate?.();
    if (ctx.signal?.aborted) throw new EaselError("E_CANCELLED", "The request was cancelled.");
    if (this.opts.failWith) throw this.opts.failWith;
    const images: GeneratedImage[] = [];
    for (let i = 0; i < req.n; i++) {
      const img = await this.encode(req, seed + i, req.width, req.height, i);
      if ((ctx.delivery ?? "url") === "url") {
        const token = randomBytes(24).toString("base64url");
        const expiresAt = Date.now() + (this.opts.fileTtlSeconds ?? 3600) * 1000;
        this.files.set(token, { bytes: img.bytes, mime: img.mime, expiresAt });
        img.url = `/v1/files/${token}`;
      }
      images.push(img);
    }
    if (keyId !== null && balance !== null) this.balances.set(keyId, balance - req.n);
    this.charges.push({ keyId, credits: req.n });
    return {
      jobId,
      model: info.id,
      created: Math.floor(Date.now() / 1000),
      seed,
      images,
      // As the job service: the request's warnings (the dialect's and the sampler's) come back with the result.
      warnings: [...(req.warnings ?? [])],
      creditsCharged: req.n,
      remainingCredits: keyId === null ? undefined : (this.balances.get(keyId) ?? undefined),
    };
  }

  /** A solid colour derived from the seed, encoded as asked. */
  private async encode(req: GenerationRequest, seed: number, w: number, h: number, i: number): Promise<GeneratedImage> {
    const background = { r: (seed * 37 + i) % 256, g: (seed * 91) % 256, b: (seed * 13) % 256 };
    let img = sharp({ create: { width: w, height: h, channels: 3, background } });
    const q = req.output.quality;
    if (req.output.format === "jpeg") img = img.jpeg(q === undefined ? {} : { quality: Math.max(1, q) });
    else if (req.output.format === "webp") img = img.webp(q === undefined ? {} : { quality: Math.max(1, q) });
    else img = img.png();
    const bytes = new Uint8Array(await img.toBuffer());
    return {
      id: createHash("sha256").update(bytes).digest("hex"),
      bytes,
      mime: MIME[req.output.format],
      format: req.output.format,
      width: w,
      height: h,
      seed,
    };
  }

  async remainingCredits(principal: Principal): Promise<number | null> {
    return principal.keyId === null ? null : (this.balances.get(principal.keyId) ?? null);
  }

  async getJob(id: string): Promise<JobRecord> {
    throw new EaselError("E_NOT_FOUND", `job ${id} not found`);
  }

  /** The fake keeps no job records (getJob finds none), so every caller's list is empty. */
  async listJobs(): Promise<{ jobs: JobRecord[]; hasMore: boolean }> {
    return { jobs: [], hasMore: false };
  }

  async cancelJob(id: string): Promise<JobRecord> {
    return this.getJob(id);
  }

  async deleteJob(id: string): Promise<void> {
    await this.getJob(id);
  }

  async openImage(token: string): Promise<{ bytes: Uint8Array; mime: string; expiresAt: number } | undefined> {
    const file = this.files.get(token);
    return file && file.expiresAt > Date.now() ? file : undefined;
  }

  listModels(): ModelInfo[] {
    return this.models;
  }

  findModel(name: string): ModelInfo | undefined {
    const lower = name.toLowerCase();
    return this.models.find((m) => m.id.toLowerCase() === lower || m.aliases.some((a) => a.toLowerCase() === lower));
  }

  balance(key: string): number | null | undefined {
    return this.balances.get(key);
  }
}
