/**
 * Inference worker thread. ONNX Runtime's session.run blocks its thread, so every pipeline runs here and the HTTP
 * thread stays free. Loaded pipelines are cached per checkpoint directory; runs are serial per worker.
 */
import { basename } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import { loadCheckpoint } from "../checkpoint/checkpoint.ts";
import { EaselError, toEaselError } from "../core/errors.ts";
import { type LoraChoice, readLoraFile } from "../models/components/lora.ts";
import { findSafetyChecker } from "../models/components/safety-checker.ts";
import { familyFor } from "../models/index.ts";
import type { LoadedPipeline } from "../models/pipeline/family.ts";
import { loadTextEmbedder, type TextEmbedder } from "../models/pipeline/text-embedding.ts";
import { trimNativeHeap } from "../runtime/native-heap.ts";
import { precomputeLoraMerges } from "./lora-merge.ts";
import type { FromWorker, ToWorker, WorkerInit } from "./protocol.ts";
import { createSafetyCheckers } from "./safety.ts";

const port = parentPort;
if (!port) throw new Error("engine/worker.ts must run in a worker thread");
const init = workerData as WorkerInit;
/** Loaded pipelines by checkpoint directory and LoRA set (see pipelineKey). */
const loaded = new Map<string, Promise<LoadedPipeline>>();
const safety = createSafetyCheckers(init.runtime);
const embedders = new Map<string, Promise<TextEmbedder>>();

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

/** The checkpoint directory, then the LoRA set (files and scales, in request order) when there is one. */
const pipelineKey = (modelDir: string, loras: readonly LoraChoice[] = []) => (loras.length === 0 ? modelDir : `${modelDir}\0${JSON.stringify(loras)}`);
const dirOfKey = (key: string) => key.split("\0")[0];

/**
 * A LoRA set is merged into the weights when its pipeline loads (models/components/lora.ts), so each set is a
 * pipeline of its own. One LoRA pipeline per checkpoint is kept beside the plain one: a different set releases the
 * last one first, so memory stays at two pipelines per checkpoint at most.
 */
async function pipelineFor(modelDir: string, loras: readonly LoraChoice[] = []): Promise<LoadedPipeline> {
  const key = pipelineKey(modelDir, loras);
  let p = loaded.get(key);
  if (!p) {
    if (loras.length > 0) {
      for (const other of [...loaded.keys()]) {
        if (other !== modelDir && dirOfKey(other) === modelDir) {
          const old = loaded.get(other);
          loaded.delete(other);
          await (await old?.catch(() => undefined))?.release();
        }
      }
    }
    p = (async () => {
      const ckpt = loadCheckpoint(modelDir);
      if (loras.length === 0) return familyFor(ckpt).load(ckpt, init.runtime);
      // The merged weights are computed here with onnxruntime (./lora-merge.ts); the component builders find them.
      await precomputeLoraMerges(ckpt, loras, init.runtime);
      const applied = new Set<string>();
      const pipe = await familyFor(ckpt).load(ckpt, { ...init.runtime, loras: { choices: loras, applied: (file, m) => applied.add(`${file}\0${m.component}:${m.module}`) } });
      // Every module of every file must have reached a component this family loads (a LoRA with text-encoder-2
      // weights on SD1.5, or UNet weights on SD3, would otherwise run without part of what was asked).
      for (const c of loras) {
        const missed = readLoraFile(c.file).filter((m) => !applied.has(`${c.file}\0${m.component}:${m.module}`));
        if (missed.length > 0) {
          await pipe.release();
          throw new EaselError(
            "E_NOT_SUPPORTED",
            `LoRA ${basename(c.file)} has ${[...new Set(missed.map((m) => m.component))].join(", ")} weights this ${pipe.family} model does not apply LoRAs to`,
            { param: "loras" },
          );
        }
      }
      return pipe;
    })();
    loaded.set(key, p);
    p.catch(() => loaded.delete(key));
  }
  return p;
}

let chain: Promise<void> = Promise.resolve();

async function handle(msg: ToWorker): Promise<void> {
  try {
    if (msg.type === "describe") {
      const ckpt = loadCheckpoint(msg.modelDir);
      const f = familyFor(ckpt);
      const limits = { ...f.limits(ckpt, init.runtime), safetyChecker: findSafetyChecker(msg.modelDir) !== undefined };
      post({ type: "described", id: msg.id, family: f.id, kind: f.kind(ckpt), limits, defaults: f.defaults(ckpt), aliases: f.aliases(ckpt) });
    } else if (msg.type === "run") {
      const flag = new Int32Array(msg.cancel);
      const pipe = await pipelineFor(msg.modelDir, msg.params.loras);
      const output = await pipe.run(msg.params, {
        isCancelled: () => Atomics.load(flag, 0) !== 0,
        onStep: (step, totalSteps) => post({ type: "step", id: msg.id, step, totalSteps }),
        onPreview: (index, step, images) => post({ type: "preview", id: msg.id, index, step, images }),
      });
      // Before the images leave this thread: a flagged one is never sent, encoded or stored.
      if (msg.safety) await safety.apply(msg.modelDir, output, msg.safety);
      post({ type: "done", id: msg.id, output });
      trimNativeHeap(); // what the run's activations left between live blocks (src/runtime/native-heap.ts)
    } else if (msg.type === "embed") {
      let e = embedders.get(msg.modelDir);
      if (!e) {
        e = loadTextEmbedder(loadCheckpoint(msg.modelDir), init.runtime);
        embedders.set(msg.modelDir, e);
        e.catch(() => embedders.delete(msg.modelDir));
      }
      post({ type: "embedded", id: msg.id, vectors: await (await e).embed(msg.texts) });
    } else {
      const dirs = [...loaded.keys()].filter((k) => !msg.modelDir || dirOfKey(k) === msg.modelDir);
      for (const d of dirs) {
        const p = loaded.get(d);
        loaded.delete(d);
        if (p) await (await p.catch(() => undefined))?.release();
      }
      if (!msg.modelDir) await safety.release();
      for (const d of msg.modelDir ? [msg.modelDir] : [...embedders.keys()]) {
        const e = embedders.get(d);
        embedders.delete(d);
        if (e) await (await e.catch(() => undefined))?.release();
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
