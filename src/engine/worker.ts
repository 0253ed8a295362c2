/**
 * Inference worker thread. ONNX Runtime's session.run blocks its thread, so every pipeline runs here and the HTTP
 * thread stays free. Loaded pipelines are cached per checkpoint directory; runs are serial per worker.
 */
import { parentPort, workerData } from "node:worker_threads";
import { loadCheckpoint } from "../checkpoint/checkpoint.ts";
import { EaselError, toEaselError } from "../core/errors.ts";
import { familyFor } from "../models/index.ts";
import type { LoadedPipeline } from "../models/pipeline/family.ts";
import type { FromWorker, ToWorker, WorkerInit } from "./protocol.ts";

const port = parentPort;
if (!port) throw new Error("engine/worker.ts must run in a worker thread");
const init = workerData as WorkerInit;
const loaded = new Map<string, Promise<LoadedPipeline>>();

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

function pipelineFor(modelDir: string): Promise<LoadedPipeline> {
  let p = loaded.get(modelDir);
  if (!p) {
    p = (async () => {
      const ckpt = loadCheckpoint(modelDir);
      return familyFor(ckpt).load(ckpt, init.runtime);
    })();
    loaded.set(modelDir, p);
    p.catch(() => loaded.delete(modelDir));
  }
  return p;
}

let chain: Promise<void> = Promise.resolve();

async function handle(msg: ToWorker): Promise<void> {
  try {
    if (msg.type === "describe") {
      const ckpt = loadCheckpoint(msg.modelDir);
      const f = familyFor(ckpt);
      post({ type: "described", id: msg.id, family: f.id, kind: f.kind(ckpt), limits: f.limits(ckpt, init.runtime), defaults: f.defaults(ckpt), aliases: f.aliases(ckpt) });
    } else if (msg.type === "run") {
      const flag = new Int32Array(msg.cancel);
      const pipe = await pipelineFor(msg.modelDir);
      const output = await pipe.run(msg.params, {
        isCancelled: () => Atomics.load(flag, 0) !== 0,
        onStep: (step, totalSteps) => post({ type: "step", id: msg.id, step, totalSteps }),
        onPreview: (index, step, images) => post({ type: "preview", id: msg.id, index, step, images }),
      });
      post({ type: "done", id: msg.id, output });
    } else {
      const dirs = msg.modelDir ? [msg.modelDir] : [...loaded.keys()];
      for (const d of dirs) {
        const p = loaded.get(d);
        loaded.delete(d);
        if (p) await (await p.catch(() => undefined))?.release();
      }
      post({ type: "released", id: msg.id });
    }
  } catch (e) {
    const err = e instanceof Error && e.name === "AbortError" ? new EaselError("E_CANCELLED", "generation cancelled") : toEaselError(e);
    const message = err.code === "E_INTERNAL" && e instanceof Error ? `engine failure: ${e.message}` : err.message;
    post({ type: "error", id: msg.id, error: { code: err.code, message, param: err.param, name: err.name } });
  }
}

port.on("message", (msg: ToWorker) => {
  // Describe and release are cheap but still serialised so they never race a load of the same directory.
  chain = chain.then(() => handle(msg));
});
