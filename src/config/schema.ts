import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";

const price = z.object({
  /** Credits for one image at the reference size and steps. */
  perImage: z.number().nonnegative(),
  /** The price scales by (width*height)/referencePixels and steps/referenceSteps. */
  referencePixels: z.number().int().positive().default(1024 * 1024),
  referenceSteps: z.number().int().positive().default(30),
});

/** One of several equivalent upstream targets of a model, chosen by weight (load balancing). */
const upstreamTarget = z.object({
  /** A key of `providers`. */
  provider: z.string().min(1),
  /** The model name on that provider; default: the entry's own name. */
  upstreamModel: z.string().min(1).optional(),
  weight: z.number().positive().default(1),
});

/**
 * A public model name mapped to a local checkpoint directory (`path`), to an upstream provider's model (`provider`
 * + `upstreamModel`), or to several equivalent upstream targets (`targets`, weighted). `fallbacks` lists other
 * registered model names, local or remote, tried in order when every target failed for a reason another one may
 * not have (unreachable, 5xx, timeouts, rate limits, an upstream out of credits, an open circuit).
 */
const modelEntry = z
  .object({
    path: z.string().optional(),
    provider: z.string().min(1).optional(),
    upstreamModel: z.string().min(1).optional(),
    targets: z.array(upstreamTarget).min(1).optional(),
    fallbacks: z.array(z.string().min(1)).default([]),
    /** How scheduler names are read for an upstream model (vp, edm, flow); default: the provider's table. */
    kind: z.enum(["vp", "edm", "flow"]).optional(),
    aliases: z.array(z.string()).default([]),
  })
  .refine((e) => [e.path, e.provider, e.targets].filter((x) => x !== undefined).length === 1, {
    message: "give exactly one of path, provider or targets",
  })
  .refine((e) => e.upstreamModel === undefined || e.provider !== undefined, {
    message: "upstreamModel goes with provider",
    path: ["upstreamModel"],
  });

/** An API key given in the config, or the environment variable that holds it. */
const secret = z.union([z.string().min(1), z.strictObject({ env: z.string().min(1) })]);

/** An upstream provider requests can be routed to (models.entries.<name>.provider). */
const upstreamProvider = z.object({
  type: z.enum(["openai", "segmind", "monica", "playground"]),
  /** Where its API lives: openai "https://api.openai.com/v1", segmind "https://api.segmind.com", monica
   * "https://openapi.monica.im", playground "https://playground.com" (or another Easel's address). */
  baseUrl: z
    .string()
    .url()
    .refine((u) => /^https?:\/\//i.test(u), { message: "baseUrl must be an http(s) URL" }),
  apiKey: secret.optional(),
  /** openai type: the upstream is another Easel, which also takes negative_prompt, seed, steps, scheduler, ... */
  easelExtensions: z.boolean().default(false),
  timeouts: z
    .object({
      /** A connection not accepted within this fails at once (and is retried). */
      connectMs: z.number().int().positive().default(5_000),
      /** One request, from sending it to the last byte of its answer. */
      totalMs: z.number().int().positive().default(300_000),
    })
    .prefault({}),
  /** Retries of connection errors, timeouts, 429 and 5xx answers: exponential backoff with full jitter. */
  retries: z
    .object({
      max: z.number().int().min(0).max(10).default(2),
      baseDelayMs: z.number().int().min(0).default(250),
      maxDelayMs: z.number().int().min(0).default(10_000),
      /** A Retry-After longer than this is not waited for: the request fails over instead. */
      maxRetryAfterMs: z.number().int().min(0).default(30_000),
    })
    .prefault({}),
  /** After failureThreshold failures in a row the provider is skipped for resetMs, then one probe request is let through. */
  breaker: z
    .object({
      failureThreshold: z.number().int().min(1).default(5),
      resetMs: z.number().int().positive().default(30_000),
    })
    .prefault({}),
});

/** An S3 key prefix: folder names joined by "/" (no empty, "." or ".." segment), an optional trailing "/". */
const S3_PREFIX = /^(?!(.*\/)?\.\.?(\/|$))[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*\/?$/;

export const configSchema = z.object({
  dataDir: z.string().default(join(homedir(), ".easel")),
  server: z
    .object({
      host: z.string().default("127.0.0.1"),
      port: z.number().int().min(0).max(65535).default(8080),
      /**
       * Base of the image URLs handed to clients. Unset: the address the client connected to (never its Host
       * header), or the proxy's X-Forwarded-Proto/-Host when trustProxy is on.
       */
      publicBaseUrl: z.string().url().optional(),
      /** Trust X-Forwarded-* headers (client address, image URL scheme and host): only behind a reverse proxy. */
      trustProxy: z.boolean().default(false),
      /** Serve without API keys on a non-loopback address. Off: such a server refuses to start open. */
      allowOpen: z.boolean().default(false),
      /** Guards the admin API (`/admin/...`); unset disables it. */
      adminKey: z.string().min(16).optional(),
      /** Largest request body on JSON-only routes (every route without an uploaded image). */
      jsonBodyLimitBytes: z.number().int().positive().default(512 * 1024),
      /** Largest request body on routes that take an uploaded image (Playground `init_image`). */
      imageBodyLimitBytes: z.number().int().positive().default(25 * 1024 * 1024),
      /** Whole request (headers and body) must arrive within this; a slower client gets 408 and is disconnected. */
      requestTimeoutMs: z.number().int().positive().default(60_000),
      /** Request headers must arrive within this (also bounds a connection that sends nothing). */
      headersTimeoutMs: z.number().int().positive().default(10_000),
      /** An idle keep-alive connection is closed after this. */
      keepAliveTimeoutMs: z.number().int().positive().default(5_000),
      /** Open connections at most; connections past it are closed at once. */
      maxConnections: z.number().int().positive().default(1024),
      /**
       * Cross-origin browser access (CORS): allowed origins ("https://app.example.com", or "*" for any). Empty (the
       * default): no CORS headers, and OPTIONS is answered 405 like any other method a route does not take.
       */
      corsOrigins: z.array(z.string().min(1)).default([]),
      /**
       * The secret that signs image URLs (at least 32 characters). Unset: a random one kept in the data directory.
       * Required when any driver is shared (storage.databaseUrl, queue.redisUrl, storage.s3), so that every node
       * signs and accepts the same URLs.
       */
      urlSecret: z.string().min(32, "urlSecret must be at least 32 characters (e.g. `openssl rand -hex 32`)").optional(),
    })
    .refine((s) => s.headersTimeoutMs <= s.requestTimeoutMs, {
      message: "headersTimeoutMs must not exceed requestTimeoutMs",
      path: ["headersTimeoutMs"],
    })
    .prefault({}),
  models: z
    .object({
      /** Every diffusers folder found here is registered under its folder name. Default: <dataDir>/models. */
      dir: z.string().optional(),
      entries: z.record(z.string(), modelEntry).default({}),
      /** The model a request that names none gets (OpenAI without `model`). Default: the built-in easel-shapes. */
      default: z.string().min(1).optional(),
      /**
       * Names the default model also answers to, each unless a model (an entry's id or alias, a folder) has it:
       * OpenAI's model names, which clients with a fixed model list send (docs/dialects.md). [] turns this off.
       */
      defaultAliases: z.array(z.string().min(1)).default(["dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1.5", "gpt-image-1-mini"]),
    })
    .prefault({}),
  /** The Hugging Face hub `easel pull` and POST /admin/models/pull download from. */
  hub: z
    .object({
      /** Base URL of the hub (env HF_ENDPOINT, as huggingface_hub reads it). */
      endpoint: z.string().url().default("https://huggingface.co"),
      /** Access token for gated and private repositories (env HF_TOKEN). */
      token: z.string().min(1).optional(),
    })
    .prefault({}),
  /** Upstream providers by id (the id names them in model entries, warnings and job records). */
  providers: z.record(z.string(), upstreamProvider).default({}),
  engine: z
    .object({
      executionProvider: z.enum(["cpu", "cuda"]).default("cpu"),
      /** ONNX Runtime intra-op threads; 0 = all cores. */
      intraOpThreads: z.number().int().min(0).default(0),
      /** Graph cache. Default: <dataDir>/cache. */
      cacheDir: z.string().optional(),
      /**
       * SD3: "int8" runs T5's linear layers with weight-only int8 weights (about a quarter of fp32 T5-XXL's
       * memory; results differ slightly and each one carries a W_QUANTIZED warning). Never chosen automatically.
       */
      t5Quantization: z.enum(["none", "int8"]).default("none"),
      /**
       * Compute precision of the denoiser (UNet). "fp32" (default) is exact. "int8" is opt-in: linear and
       * convolution weights quantised per output channel, activations per call, on onnxruntime's integer kernels
       * (faster on CPUs with AVX-512 VNNI; results differ slightly from fp32 and each one carries a W_QUANTIZED
       * warning; docs/models.md). "bf16" is refused: onnxruntime 1.23's CPU provider has no bfloat16 MatMul or Conv.
       */
      /**
       * The most memory (GiB) the models' memory plans may count on; default: the machine's (or its container's
       * cgroup limit), less 1 GiB. Below what a request needs, guidance runs as two calls, SD3 loads components per
       * request, and a request that still does not fit is refused before admission with the figure it needs
       * (docs/models.md, "Memory").
       */
      memoryLimitGiB: z.number().positive().optional(),
      precision: z
        .enum(["fp32", "int8", "bf16"])
        .default("fp32")
        .refine((p) => p !== "bf16", {
          message: 'precision "bf16" is not available: onnxruntime 1.23\'s CPU provider has no bfloat16 MatMul or Conv kernels; use "int8" or "fp32"',
        }),
    })
    .prefault({}),
  images: z
    .object({
      urlTtlSeconds: z.number().int().positive().default(3600),
      /** Images and their rows older than this are deleted; 0 keeps them forever. */
      retentionDays: z.number().nonnegative().default(30),
      /** Also store images that were returned as base64. */
      storeB64: z.boolean().default(false),
      /**
       * Write the generation parameters into every image, in AUTOMATIC1111's infotext format: a PNG `parameters`
       * text chunk, EXIF UserComment and XMP in JPEG and WebP. Off: images carry no metadata.
       */
      parametersMetadata: z.boolean().default(true),
    })
    .prefault({}),
  storage: z
    .object({
      /**
       * Metadata (keys, credits ledger, jobs, images) in PostgreSQL (`postgres://user:pass@host:5432/db`) instead of
       * <dataDir>/easel.db, shared by every node of a scaled-out deployment. Migrations run on start.
       */
      databaseUrl: z
        .string()
        .regex(/^postgres(ql)?:\/\//, "databaseUrl must be a postgres:// or postgresql:// URL")
        .optional(),
      /**
       * Image bytes in an S3-compatible bucket instead of <dataDir>/images (every node of a scaled-out deployment
       * must see the same bytes). Credentials: the AWS SDK's default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
       * profiles, instance roles). The bucket, or the prefix inside it, belongs to Easel: retention deletes old
       * objects there that no image row names.
       */
      s3: z
        .object({
          bucket: z.string({ error: "storage.s3.bucket (EASEL_S3_BUCKET) is required when any storage.s3 setting is given" }).min(1),
          /** Base URL of an S3-compatible service (MinIO, Ceph RGW, R2, ...); unset: AWS S3 in `region`. */
          endpoint: z.string().url().optional(),
          /** Signing region (on AWS, the bucket's region); S3-compatible services mostly accept any. */
          region: z.string().min(1).default("us-east-1"),
          /** <endpoint>/<bucket> addressing instead of <bucket>.<endpoint>: most self-hosted services need it. */
          forcePathStyle: z.boolean().default(false),
          /** Key prefix, a "folder" such as `easel/images`, when the bucket is shared. */
          prefix: z
            .string()
            .regex(S3_PREFIX, "prefix must be folder names of [A-Za-z0-9._-] (not . or ..) joined by /")
            .optional(),
        })
        .optional(),
    })
    .prefault({}),
  queue: z
    .object({
      /** Jobs run at once (the local engine runs one at a time; more only helps upstream providers). */
      concurrency: z.number().int().min(1).max(64).default(1),
      /** Jobs waiting to start, all keys together; past it a request is refused with E_OVERLOADED (503) and Retry-After. */
      maxQueued: z.number().int().min(0).default(100),
      /** Longest a job may run, in seconds, before it is stopped and answered E_TIMEOUT (504); 0 = no limit. */
      jobTimeoutSeconds: z.number().nonnegative().default(1800),
      /**
       * Redis (`redis://host:6379/0`, `rediss://` for TLS): jobs wait in a BullMQ queue there and their events
       * (progress, previews) travel over it, so API nodes and `easel worker` processes share them. Unset: in-process.
       */
      redisUrl: z
        .string()
        .regex(/^rediss?:\/\//, "redisUrl must be a redis:// or rediss:// URL")
        .optional(),
      /**
       * Shared queue: how long a worker's hold on a running job lasts without renewal (renewed every half of it). A job
       * whose worker died is handed to another worker about this long after the last renewal.
       */
      leaseSeconds: z.number().min(1).max(3600).default(30),
      /** Name of the shared queue (its Redis keys start with it); deployments sharing one Redis use different names. */
      name: z
        .string()
        .regex(/^[A-Za-z0-9_-]{1,64}$/, "queue name must be 1-64 characters of [A-Za-z0-9_-]")
        .default("easel"),
    })
    .prefault({}),
  /**
   * Completion webhooks (a key's URL is set with `easel keys webhook` or the admin API, never by a request): every
   * settled job of such a key is POSTed there, signed (Standard Webhooks: webhook-id, webhook-timestamp,
   * webhook-signature), from an outbox in the database that every node drains; a failed delivery is retried with
   * exponential backoff.
   */
  webhooks: z
    .object({
      /** Attempts per event before it is given up (the first included). */
      maxAttempts: z.number().int().min(1).max(100).default(10),
      /** Wait before the second attempt, in ms; doubled after each failure, up to maxBackoffMs. */
      initialBackoffMs: z.number().int().min(1).default(5000),
      maxBackoffMs: z.number().int().min(1).default(3_600_000),
      /** How long one delivery may take (connection and answer), in ms. */
      timeoutMs: z.number().int().min(1).default(10_000),
      /** How often each node looks for due deliveries, in ms. */
      pollMs: z.number().int().min(10).default(1000),
    })
    .prefault({}),
  /** Per-key limits that apply to every key (open mode counts as one key). */
  limits: z
    .object({
      /** Jobs one key may have waiting to start; past it a request is refused with E_RATE_LIMITED (429) and Retry-After. */
      maxQueuedPerKey: z.number().int().min(0).default(10),
      /** Requests per minute for keys created without a rate limit of their own; unset: no limit. */
      requestsPerMinute: z.number().int().min(1).max(1_000_000).optional(),
      /** Jobs queued or running at once for keys created without a limit of their own; unset: no limit. */
      maxConcurrent: z.number().int().min(1).max(1_000_000).optional(),
      /**
       * Share of the queue's turns by key id (default 1). While several keys wait, turns follow work done (images x
       * pixels x steps): a key with priority 2 gets twice the work of a key with 1.
       */
      priorities: z.record(z.string(), z.number().positive().max(1000)).default({}),
    })
    .prefault({}),
  pricing: z
    .object({
      default: price.prefault({ perImage: 1 }),
      models: z.record(z.string(), price).default({}),
      /**
       * Credits charged at least per image, whatever its size and steps (prices are rounded up to 0.001 credit,
       * then raised to this). At least 0.001, so a metered key with no credits left can never generate; give a
       * key unlimited credits instead to let it generate for free.
       */
      minimumPerImage: z.number().min(0.001).max(1e6).default(0.001),
    })
    .prefault({}),
  /** The image safety checker (diffusers' StableDiffusionSafetyChecker) on local models (docs/prompts.md). */
  safety: z
    .object({
      /** A StableDiffusionSafetyChecker folder (config.json, weights, preprocessor_config.json) for models without their own. */
      checkerDir: z.string().min(1).optional(),
      /** A flagged image: "black" replaces it by a black image with a W_IMAGE_FLAGGED warning; "refuse" fails the request (E_PROMPT_UNSAFE). */
      onFlagged: z.enum(["black", "refuse"]).default("black"),
      /** Check every image of models that have a checker, whether or not the request asks. */
      always: z.boolean().default(false),
    })
    .prefault({}),
  /** Style presets and prompt checks (docs/prompts.md). */
  prompts: z
    .object({
      /** Presets added to the 36 built-in `prompt_filter` styles (an id of a built-in one replaces it). */
      styles: z
        .array(
          z.object({
            id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "style ids are 1-64 characters of [a-z0-9_-]"),
            prompt: z.string().includes("{prompt}", { message: "a style's prompt template must contain {prompt}" }),
            negativePrompt: z.string().default(""),
          }),
        )
        .default([]),
      /** Replaces the built-in categories `verify_prompt_safety` checks (each an id, a description and its terms). */
      safetyCategories: z
        .array(z.object({ id: z.string().min(1), description: z.string().min(1), terms: z.array(z.string().min(1)).min(1) }))
        .optional(),
      /**
       * Cosine similarity between the prompt and a topic, both encoded by the model's CLIP text encoder, at or above
       * which the prompt is refused even without a word of the topic. Unset: word and phrase matching only.
       */
      semanticThreshold: z.number().min(-1).max(1).optional(),
    })
    .prefault({}),
  /** `expand_prompt`: an OpenAI-compatible chat-completions provider (providers.<id>, type openai) rewrites the prompt. */
  promptExpansion: z
    .object({
      provider: z.string().min(1),
      model: z.string().min(1),
      systemPrompt: z
        .string()
        .min(1)
        .default(
          "Rewrite the user's image prompt into one richer, more vivid prompt for a text-to-image model: keep its subject and intent, add concrete detail about style, lighting and composition. Answer with the prompt only, at most 60 words.",
        ),
      /** Ask for a streamed answer (Server-Sent Events) instead of one JSON body. */
      stream: z.boolean().default(false),
      maxTokens: z.number().int().min(1).max(4096).default(200),
      temperature: z.number().min(0).max(2).default(0.7),
    })
    .optional(),
});

export type Config = Readonly<z.infer<typeof configSchema>>;
export type ConfigInput = z.input<typeof configSchema>;
