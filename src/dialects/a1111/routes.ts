/**
 * The AUTOMATIC1111 web UI API (`/sdapi/v1/*`, stable-diffusion-webui 1.10 modules/api/api.py) as Open WebUI,
 * SillyTavern and LibreChat call it.
 *
 * Keys: HTTP Basic (A1111's `--api-auth user:password`), whose password is the Easel API key (the user name is not
 * checked), or `Authorization: Bearer <key>`. An empty header (what those clients send with no auth set) is no key.
 *
 * A1111 holds one checkpoint and one set of options per server; here the "current model" and the options set with
 * POST /sdapi/v1/options belong to the key that set them (the open server's, when it runs without keys), in this
 * process's memory: a restart or another API node starts from the defaults. `GET /sdapi/v1/progress` and
 * `POST /sdapi/v1/interrupt` see the key's own txt2img/img2img requests running through this process.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { EaselError } from "../../core/errors.ts";
import type { Principal } from "../../core/image-service.ts";
import type { GenerationEvent } from "../../core/types.ts";
import { listLoras } from "../../models/components/lora.ts";
import { A1111_SAMPLERS, A1111_SCHEDULES } from "../_shared/a1111-names.ts";
import type { DialectDeps } from "../_shared/dialect.ts";
import { authHook, b64, bearerKey, type HeadersOnly, methodNotAllowed, principalOf, requestContext, resultHeaders } from "../_shared/http.ts";
import { lorasDirOf } from "../_shared/lora-fields.ts";
import { applyNamedStyles, preparePrompt, promptsOf } from "../_shared/prompt-fields.ts";
import { type CommonBody, img2imgBody, optionsBody, txt2imgBody } from "./schema.ts";
import { defaultModel, findCheckpoint, infoObject, type KeyOptions, parseClipStop, parseSamplesFormat, translate } from "./translate.ts";

export const DIALECT_ID = "a1111";
export const PREFIX = "/sdapi/v1";

/**
 * The key of an A1111 request: Basic's password, or a Bearer token. `Basic` with nothing after it, or an empty
 * Authorization header, is no key (the open server answers it; a server with keys says a key is required).
 */
export function a1111Key(req: HeadersOnly): string | undefined {
  const h = req.headers.authorization?.trim();
  if (!h) return undefined;
  const basic = /^Basic(?:[ \t]+(\S*))?$/i.exec(h);
  if (!basic) return bearerKey(req);
  if (!basic[1]) return undefined;
  const decoded = Buffer.from(basic[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  const password = colon < 0 ? decoded : decoded.slice(colon + 1);
  return password === "" ? undefined : password;
}

/** One running request of a key, as /progress reports it. */
interface Running {
  jobId?: string;
  startedAt: number;
  step: number;
  totalSteps: number;
  preview?: Uint8Array;
}

interface KeyState {
  options: KeyOptions;
  running: Set<Running>;
}

const stateKey = (p: Principal): string => p.keyId ?? "(open)";

const sdModelItem = (id: string) => ({ title: id, model_name: id, hash: null, sha256: null, filename: id, config: null });

export async function a1111Routes(app: FastifyInstance, deps: DialectDeps): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { images, config } = deps;
  const auth = authHook(images, a1111Key);
  const security: Record<string, string[]>[] = [{ basic: [] }, { bearer: [] }];
  const tags = ["AUTOMATIC1111"];
  /** Per key, this server's memory (see the header comment). */
  const states = new Map<string, KeyState>();
  const stateOf = (p: Principal): KeyState => {
    let s = states.get(stateKey(p));
    if (!s) {
      s = { options: {}, running: new Set() };
      states.set(stateKey(p), s);
    }
    return s;
  };

  const currentModel = (p: Principal): string => {
    const chosen = stateOf(p).options.model;
    return chosen && images.findModel(chosen) ? chosen : defaultModel(images, config.models.default).id;
  };

  /** Runs one generation; the answer's body and Easel's headers. */
  async function generate(mode: "txt2img" | "img2img", body: CommonBody, req: FastifyRequest, reply: FastifyReply) {
    const principal = principalOf(req);
    const state = stateOf(principal);
    const t = await translate(body, mode, state.options, images, config.models.default);
    const running: Running = { startedAt: Date.now(), step: 0, totalSteps: t.steps };
    const onEvent = (e: GenerationEvent) => {
      running.jobId = e.jobId;
      if (e.type === "progress") {
        running.step = e.step;
        running.totalSteps = e.totalSteps;
      } else if (e.type === "preview") running.preview = e.image.bytes;
    };
    state.running.add(running);
    try {
      const ctx = requestContext(req, reply, { dialect: DIALECT_ID, delivery: t.saveImages ? "url" : "bytes", onEvent });
      // <lora:name:scale> in the prompt, as the web UI reads it: resolved in the LoRA folder before admission.
      // Prompt styles by name (the presets of GET /sdapi/v1/prompt-styles), applied as the web UI applies them.
      // The extension fields (topics, safety categories, expansion, prompt_filter, safety_check) before admission; the
      // LoRA tags in the prompt with them (A1111 has no loras field).
      const prepared = await preparePrompt(deps, t.req, { ...body, loras: undefined }, ctx.signal);
      const result = await images.generate(applyNamedStyles(deps, prepared.req, body.styles ?? []), ctx);
      const { init_images: _omit, ...echo } = body as CommonBody & { init_images?: unknown };
      reply.headers(resultHeaders(result));
      return {
        images: t.sendImages ? result.images.map((img) => b64(img.bytes)) : [],
        parameters: mode === "img2img" && !(body as { include_init_images?: boolean | null }).include_init_images ? { ...echo, init_images: null } : body,
        info: JSON.stringify(infoObject(t, result, body)),
      };
    } finally {
      state.running.delete(running);
    }
  }

  const generationResponse = z.object({ images: z.array(z.string()), parameters: z.record(z.string(), z.unknown()), info: z.string() });

  r.post(
    `${PREFIX}/txt2img`,
    { onRequest: auth, schema: { tags, summary: "Text to image (A1111)", security, body: txt2imgBody, response: { 200: generationResponse } } },
    (req, reply) => generate("txt2img", req.body, req, reply),
  );
  r.post(
    `${PREFIX}/img2img`,
    {
      onRequest: auth,
      // init_images travel as base64 inside the JSON body.
      bodyLimit: config.server.imageBodyLimitBytes,
      schema: { tags, summary: "Image to image (A1111)", security, body: img2imgBody, response: { 200: generationResponse } },
    },
    (req, reply) => generate("img2img", req.body, req, reply),
  );

  r.get(`${PREFIX}/options`, { onRequest: auth, schema: { tags, summary: "Current options (per key)", security } }, async (req) => {
    const p = principalOf(req);
    const o = stateOf(p).options;
    return {
      sd_model_checkpoint: currentModel(p),
      sd_checkpoint_hash: null,
      sd_vae: "Automatic",
      CLIP_stop_at_last_layers: o.clipStop ?? 1,
      samples_format: o.samplesFormat === "jpeg" ? "jpg" : (o.samplesFormat ?? "png"),
      eta_noise_seed_delta: 0,
      live_previews_enable: true,
    };
  });

  r.post(
    `${PREFIX}/options`,
    { onRequest: auth, schema: { tags, summary: "Set options for later requests of this key (sd_model_checkpoint, ...)", security, body: optionsBody } },
    async (req, reply) => {
      const p = principalOf(req);
      const next: KeyOptions = { ...stateOf(p).options };
      const body = req.body;
      // Every value is checked before any is kept: a bad one changes nothing.
      if (typeof body.sd_model_checkpoint === "string" && body.sd_model_checkpoint !== "") {
        next.model = findCheckpoint(images, body.sd_model_checkpoint, "sd_model_checkpoint").id;
      }
      if (body.CLIP_stop_at_last_layers != null) next.clipStop = parseClipStop(body.CLIP_stop_at_last_layers, "CLIP_stop_at_last_layers");
      if (body.samples_format != null) next.samplesFormat = parseSamplesFormat(body.samples_format, "samples_format");
      stateOf(p).options = next;
      // A1111 answers null.
      return reply.type("application/json").send("null");
    },
  );

  r.get(`${PREFIX}/sd-models`, { onRequest: auth, schema: { tags, summary: "Installed models", security } }, async () =>
    images.listModels().map((m) => sdModelItem(m.id)),
  );
  r.get(`${PREFIX}/samplers`, { onRequest: auth, schema: { tags, summary: "Sampler names", security } }, async () =>
    A1111_SAMPLERS.map((s) => ({ name: s.name, aliases: s.aliases, options: s.options })),
  );
  r.get(`${PREFIX}/schedulers`, { onRequest: auth, schema: { tags, summary: "Schedule types", security } }, async () => A1111_SCHEDULES);
  r.get(`${PREFIX}/prompt-styles`, { onRequest: auth, schema: { tags, summary: "Prompt styles (Easel's style presets)", security } }, async () =>
    promptsOf(deps)
      .styles()
      .map((s) => ({ name: s.id, prompt: s.prompt, negative_prompt: s.negativePrompt })),
  );
  // The LoRA folder, in the Lora extension's shape (`<lora:name:scale>` in a prompt applies one); the path is the
  // file's place under the models directory, not the server's filesystem.
  r.get(`${PREFIX}/loras`, { onRequest: auth, schema: { tags, summary: "LoRAs in the models directory's loras/ folder", security } }, async () =>
    listLoras(lorasDirOf(deps)).map((name) => ({ name, alias: name, path: `loras/${name}.safetensors`, metadata: {} })),
  );
  // Hires. fix and separate VAEs are not implemented: their lists are empty, in A1111's shapes.
  for (const path of ["upscalers", "latent-upscale-modes", "sd-vae"]) {
    r.get(`${PREFIX}/${path}`, { onRequest: auth, schema: { tags, summary: `${path} (none on this server)`, security } }, async () => []);
  }

  r.get(
    `${PREFIX}/progress`,
    {
      onRequest: auth,
      schema: { tags, summary: "Progress of this key's running request", security, querystring: z.object({ skip_current_image: z.string().optional() }) },
    },
    async (req) => {
      const state = stateOf(principalOf(req));
      const jobs = [...state.running];
      const current = jobs.find((j) => j.step > 0) ?? jobs[0];
      const progress = current && current.totalSteps > 0 ? Math.min(1, current.step / current.totalSteps) : 0;
      const elapsed = current ? (Date.now() - current.startedAt) / 1000 : 0;
      const skipImage = ["true", "1"].includes((req.query.skip_current_image ?? "").toLowerCase());
      return {
        progress,
        eta_relative: progress > 0 ? elapsed / progress - elapsed : 0,
        state: {
          skipped: false,
          interrupted: false,
          stopping_generation: false,
          job: current?.jobId ?? "",
          job_count: jobs.length,
          job_timestamp: current ? new Date(current.startedAt).toISOString().replace(/[-:T]/g, "").slice(0, 14) : "0",
          job_no: 0,
          sampling_step: current?.step ?? 0,
          sampling_steps: current?.totalSteps ?? 0,
        },
        current_image: !skipImage && current?.preview ? b64(current.preview) : null,
        textinfo: null,
      };
    },
  );

  r.post(`${PREFIX}/interrupt`, { onRequest: auth, schema: { tags, summary: "Cancel this key's running requests", security } }, async (req) => {
    const p = principalOf(req);
    for (const j of stateOf(p).running) {
      if (j.jobId) await images.cancelJob(j.jobId, p).catch((e) => (e instanceof EaselError && e.code === "E_NOT_FOUND" ? undefined : Promise.reject(e)));
    }
    return {};
  });

  for (const path of ["txt2img", "img2img", "interrupt"]) methodNotAllowed(app, `${PREFIX}/${path}`, "POST");
  for (const path of ["sd-models", "samplers", "schedulers", "upscalers", "latent-upscale-modes", "sd-vae", "loras", "progress"]) {
    methodNotAllowed(app, `${PREFIX}/${path}`, "GET");
  }
}
