/**
 * The engine as the rest of Easel sees it: describe a checkpoint directory, run a pipeline on it with progress,
 * previews and cancellation. Everything heavy happens in a worker thread (worker.ts).
 */
import { Worker } from "node:worker_threads";
import { EaselError, type ErrorCode } from "../core/errors.ts";
import type {
  ModelDescription,
  PipelineImage,
  PipelineOutput,
  PipelineParams,
  RuntimeOptions,
} from "../models/pipeline/family.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";
import type { SafetyRun } from "./safety.ts";

export interface RunHooks {
  signal?: AbortSignal;
  /** Run the image safety checker on the outputs (engine/safety.ts). */
  safety?: SafetyRun;
  onStep?: (step: number, totalSteps: number) => void;
  onPreview?: (index: number, step: number, images: PipelineImage[]) => void;
}

export type { ModelDescription } from "../models/pipeline/family.ts";

interface Pending {
  resolve: (v: FromWorker) => void;
  reject: (e: Error) => void;
  hooks?: RunHooks;
}

export class Engine {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly runtime: RuntimeOptions) {}

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL("./worker-entry.mjs", import.meta.url), { workerData: { runtime: this.runtime } });
    w.on("message", (msg: FromWorker) => this.onMessage(msg));
    w.on("error", (e) => this.failAll(e));
    w.on("exit", (code) => {
      this.worker = undefined;
      if (this.pending.size > 0) this.failAll(new Error(`inference worker exited with code ${code}`));
    });
    this.worker = w;
    return w;
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(new EaselError("E_ENGINE_FAILED", e.message, { cause: e }));
    this.pending.clear();
  }

  private onMessage(msg: FromWorker): void {
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === "step") p.hooks?.onStep?.(msg.step, msg.totalSteps);
    else if (msg.type === "preview") p.hooks?.onPreview?.(msg.index, msg.step, msg.images);
    else {
      this.pending.delete(msg.id);
      if (msg.type === "error") {
        p.reject(new EaselError(msg.error.code as ErrorCode, msg.error.message, { param: msg.error.param }));
      } else p.resolve(msg);
    }
  }

  private request(msg: Omit<ToWorker, "id"> & { type: ToWorker["type"] }, hooks?: RunHooks): Promise<FromWorker> {
    const id = this.nextId++;
    const w = this.ensureWorker();
    return new Promise<FromWorker>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, hooks });
      w.postMessage({ ...msg, id } as ToWorker);
    });
  }

  async describe(modelDir: string): Promise<ModelDescription> {
    const r = await this.request({ type: "describe", modelDir });
    if (r.type !== "described") throw new Error(`unexpected worker reply ${r.type}`);
    return { family: r.family, kind: r.kind, limits: r.limits, defaults: r.defaults, aliases: r.aliases };
  }

  async run(modelDir: string, params: PipelineParams, hooks: RunHooks = {}): Promise<PipelineOutput> {
    if (hooks.signal?.aborted) throw new EaselError("E_CANCELLED", "generation cancelled");
    const cancel = new SharedArrayBuffer(4);
    const flag = new Int32Array(cancel);
    const onAbort = () => Atomics.store(flag, 0, 1);
    hooks.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const r = await this.request({ type: "run", modelDir, params, cancel, ...(hooks.safety ? { safety: hooks.safety } : {}) } as Omit<ToWorker, "id">, hooks);
      if (r.type !== "done") throw new Error(`unexpected worker reply ${r.type}`);
      return r.output;
    } finally {
      hooks.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Pooled CLIP text embeddings of `texts` from the checkpoint's text encoder (prompt rejection's similarity). */
  async embedText(modelDir: string, texts: string[]): Promise<Float32Array[]> {
    const r = await this.request({ type: "embed", modelDir, texts } as Omit<ToWorker, "id">);
    if (r.type !== "embedded") throw new Error(`unexpected worker reply ${r.type}`);
    return r.vectors;
  }

  async release(modelDir?: string): Promise<void> {
    if (!this.worker) return;
    await this.request({ type: "release", modelDir } as Omit<ToWorker, "id">);
  }

  /**
   * Releases every session and detaches from the worker. The thread is left idle and unref'd rather than
   * terminated: once every thread that loaded onnxruntime-node's binding has exited, loading it again in a new
   * worker fails ("Module did not self-register"), so a later Engine in the same process could not start.
   */
  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    await this.release().catch(() => undefined);
    this.worker = undefined;
    this.failAll(new Error("engine closed"));
    w.removeAllListeners("message");
    w.unref();
  }
}
