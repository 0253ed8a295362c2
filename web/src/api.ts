/** The page's client for this server: models, the job API, and OpenAI's streaming generation. */
import { createParser } from "eventsource-parser";
import type { JobObject } from "../../src/dialects/easel/schema.ts";

export interface ModelLimits {
  sizeMultiple: number;
  minSize: number;
  maxSize: number;
  maxImages: number;
  maxSteps: number;
  guidance: { min: number; max: number };
  negativePrompt: boolean;
  img2img: false | { defaultStrength: number };
}

export interface Model {
  id: string;
  family: string;
  kind: "vp" | "edm" | "flow";
  backend: string;
  aliases: string[];
  defaults: { width: number; height: number; steps: number; guidanceScale: number; scheduler?: string };
  limits: ModelLimits;
  schedulers: string[];
  description?: string;
}

/** A job as GET /v1/jobs answers it: the server's own schema (type only; nothing of the server is bundled). */
export type Job = JobObject;
export type JobImage = JobObject["images"][number];

/** An error as the server worded it (any dialect's shape), with its HTTP status and code. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** The message and code of an error body: `{error: {message, code}}` (OpenAI, Easel) or `{message}`/`{detail}`. */
function errorOf(status: number, text: string, headerCode: string | null): ApiError {
  let message = text.trim() || `HTTP ${status}`;
  let code = headerCode ?? undefined;
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    const e = (body.error && typeof body.error === "object" ? body.error : body) as Record<string, unknown>;
    const m = e.message ?? e.detail ?? body.message ?? body.error;
    if (typeof m === "string") message = m;
    if (typeof e.code === "string") code = e.code;
  } catch {
    // Not JSON: the text as it came.
  }
  return new ApiError(message, status, code);
}

export interface GenerationHandlers {
  onProgress(step: number, total: number): void;
  onPreview(b64: string, format: string, index: number): void;
  onImage(b64: string, format: string, seed: number | undefined): void;
}

export class Api {
  constructor(
    public key: string | null,
    private readonly base = "",
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.key ? { authorization: `Bearer ${this.key}` } : {}), ...extra };
  }

  private async json<T>(method: string, path: string): Promise<{ body: T; headers: Headers }> {
    const res = await fetch(`${this.base}${path}`, { method, headers: this.headers() });
    const text = await res.text();
    if (!res.ok) throw errorOf(res.status, text, res.headers.get("x-easel-error-code"));
    return { body: (text ? JSON.parse(text) : null) as T, headers: res.headers };
  }

  async models(): Promise<Model[]> {
    return (await this.json<{ data: Model[] }>("GET", "/v1/models")).body.data;
  }

  /** One page of the key's jobs, newest first, and the key's credits left (null: no balance limit). */
  async jobs(after?: string, limit = 12): Promise<{ data: Job[]; hasMore: boolean; lastId: string | null; credits: string | null }> {
    const q = new URLSearchParams({ limit: String(limit), ...(after ? { after } : {}) });
    const { body, headers } = await this.json<{ data: Job[]; hasMore: boolean; lastId: string | null }>("GET", `/v1/jobs?${q}`);
    return { ...body, credits: headers.get("x-remaining-credits") };
  }

  async job(id: string): Promise<Job> {
    return (await this.json<Job>("GET", `/v1/jobs/${encodeURIComponent(id)}`)).body;
  }

  async cancelJob(id: string): Promise<Job> {
    return (await this.json<Job>("POST", `/v1/jobs/${encodeURIComponent(id)}/cancel`)).body;
  }

  async deleteJob(id: string): Promise<void> {
    await this.json<null>("DELETE", `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /** AUTOMATIC1111's txt2img/img2img: the images (base64 PNG) and the seed of each. */
  async a1111Generate(path: string, body: Record<string, unknown>, signal: AbortSignal): Promise<{ images: string[]; seeds: number[] }> {
    const res = await fetch(`${this.base}${path}`, {
      method: "POST",
      // An Idempotency-Key, as for streaming: the server keeps the images for the history.
      headers: this.headers({ "content-type": "application/json", "idempotency-key": crypto.randomUUID() }),
      body: JSON.stringify(body),
      signal,
    });
    const text = await res.text();
    if (!res.ok) throw errorOf(res.status, text, res.headers.get("x-easel-error-code"));
    const out = JSON.parse(text) as { images: string[]; info: string };
    const info = JSON.parse(out.info) as { all_seeds?: number[] };
    return { images: out.images, seeds: info.all_seeds ?? [] };
  }

  /** The key's running A1111 request: its step and latest preview frame (base64 PNG). */
  async a1111Progress(): Promise<{ state: { sampling_step: number; sampling_steps: number }; current_image: string | null }> {
    return (await this.json<{ state: { sampling_step: number; sampling_steps: number }; current_image: string | null }>("GET", "/sdapi/v1/progress")).body;
  }

  /**
   * `POST /v1/images/generations` with `stream: true`: progress arrives as `: progress s/t` comments, previews as
   * `image_generation.partial_image`, each image as `image_generation.completed`. Errors before the stream starts
   * are plain error answers; an error after it is an `error` event. An Idempotency-Key is sent so that the
   * server keeps the images (the history shows them) and a resent request is never run twice.
   */
  async generateStream(body: Record<string, unknown>, signal: AbortSignal, on: GenerationHandlers): Promise<void> {
    const res = await fetch(`${this.base}/v1/images/generations`, {
      method: "POST",
      headers: this.headers({ "content-type": "application/json", "idempotency-key": crypto.randomUUID() }),
      body: JSON.stringify({ ...body, stream: true }),
      signal,
    });
    if (!res.ok || !res.body) throw errorOf(res.status, await res.text(), res.headers.get("x-easel-error-code"));
    let failure: ApiError | undefined;
    const parser = createParser({
      onComment(comment) {
        const m = /^\s*progress (\d+)\/(\d+)/.exec(comment);
        if (m) on.onProgress(Number(m[1]), Number(m[2]));
      },
      onEvent(ev) {
        const data = JSON.parse(ev.data) as Record<string, unknown>;
        if (ev.event === "image_generation.partial_image") {
          on.onPreview(String(data.b64_json), String(data.output_format ?? "png"), Number(data.partial_image_index ?? 0));
        } else if (ev.event === "image_generation.completed") {
          on.onImage(String(data.b64_json), String(data.output_format ?? "png"), typeof data.seed === "number" ? data.seed : undefined);
        } else if (ev.event === "error") {
          failure = errorOf(500, ev.data, null);
        }
      },
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(value);
    }
    if (failure) throw failure;
  }
}
