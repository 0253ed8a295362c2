/**
 * onnxruntime-node sessions: the only place Easel touches onnxruntime. One session per built component graph,
 * created once and reused for every call; tensors cross this boundary as plain typed arrays plus shapes.
 *
 * `session.run()` does its work natively and can hold the calling thread: the engine calls this from a worker.
 */
import * as ort from "onnxruntime-node";
import { EaselError } from "../core/errors.ts";
import { trimNativeHeap } from "./native-heap.ts";

export type ExecutionProvider = "cpu" | "cuda";

export type HostTensorData = Float32Array | BigInt64Array | Int32Array;

export interface HostTensor {
  data: HostTensorData;
  shape: number[];
}

export interface SessionOptions {
  executionProvider?: ExecutionProvider;
  /** Threads for one op; default: onnxruntime's choice (one per physical core). */
  intraOpThreads?: number;
  /** CUDA device ordinal (cuda only). */
  deviceId?: number;
  /**
   * onnxruntime's graph optimisation level; default "all". "extended" leaves out the layout transformations (on the
   * CPU: convolutions in the blocked NCHWc layout, with reorder copies around every op that needs NCHW), which costs
   * the VAE's convolutions little speed and its working memory a lot (src/models/components/vae.ts).
   */
  graphOptimizationLevel?: "all" | "extended";
}

/** The session settings a prepared graph asks for (PreparedModel.session), on top of the runtime's. */
export type SessionTuning = Pick<SessionOptions, "graphOptimizationLevel">;

export interface ModelSession {
  readonly modelPath: string;
  readonly executionProvider: ExecutionProvider;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the graph; returns the requested outputs (all by default) as host tensors. */
  run(feeds: Record<string, HostTensor>, outputNames?: string[]): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
}

function toOrtTensor(name: string, t: HostTensor): ort.Tensor {
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (count !== t.data.length) {
    throw new EaselError("E_INTERNAL", `input ${name}: ${t.data.length} values for shape [${t.shape.join(", ")}]`);
  }
  if (t.data instanceof Float32Array) return new ort.Tensor("float32", t.data, t.shape);
  if (t.data instanceof BigInt64Array) return new ort.Tensor("int64", t.data, t.shape);
  return new ort.Tensor("int32", t.data, t.shape);
}

function fromOrtTensor(name: string, t: ort.Tensor): HostTensor {
  const data = t.data;
  if (data instanceof Float32Array || data instanceof BigInt64Array || data instanceof Int32Array) {
    return { data, shape: [...t.dims] };
  }
  throw new EaselError("E_ENGINE_FAILED", `output ${name} has unsupported type ${t.type}`);
}

/** Opens `modelPath` (external data resolved relative to its directory) on the chosen execution provider. */
export async function createSession(modelPath: string, opts: SessionOptions = {}): Promise<ModelSession> {
  const ep = opts.executionProvider ?? "cpu";
  if (opts.intraOpThreads !== undefined && (!Number.isInteger(opts.intraOpThreads) || opts.intraOpThreads < 0)) {
    throw new EaselError("E_INPUT_INVALID", `intraOpThreads must be an integer >= 0 (0 = default), got ${opts.intraOpThreads}`, {
      param: "intraOpThreads",
    });
  }
  const providers: ort.InferenceSession.ExecutionProviderConfig[] =
    ep === "cuda" ? [{ name: "cuda", deviceId: opts.deviceId ?? 0 } as ort.InferenceSession.ExecutionProviderConfig] : ["cpu"];
  let session: ort.InferenceSession;
  try {
    // No CPU memory arena: activations are allocated and freed per run, so a server's memory returns to its idle
    // level after a large request (with the arena, onnxruntime keeps its high-water mark for the process's life).
    // Measured on the SD1.5 UNet at 512² batch 2: same speed (21.7-25.9 s against 21.5-23.1 s per call on a shared
    // 2-core machine), resident 4.13 GiB after the calls against 4.68 GiB with the arena.
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: providers,
      graphOptimizationLevel: opts.graphOptimizationLevel ?? "all",
      enableCpuMemArena: false,
    };
    if (opts.intraOpThreads) options.intraOpNumThreads = opts.intraOpThreads;
    session = await ort.InferenceSession.create(modelPath, options);
    // Creation leaves freed temporaries between the weights (1.6 GiB on SDXL's UNet): give their pages back.
    trimNativeHeap();
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    if (ep === "cuda" && /cuda|provider|libonnxruntime_providers/i.test(msg)) {
      throw new EaselError(
        "E_NOT_SUPPORTED",
        `the CUDA execution provider is not available (${msg.split("\n")[0]}); install onnxruntime-node with CUDA support ` +
          "(npm install onnxruntime-node --onnxruntime-node-install=cuda12) and the CUDA 12 / cuDNN 9 runtime, or use executionProvider \"cpu\"",
        { param: "executionProvider", cause: e },
      );
    }
    throw new EaselError("E_ENGINE_FAILED", `onnxruntime could not load ${modelPath}: ${msg}`, { cause: e });
  }
  return {
    modelPath,
    executionProvider: ep,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, outputNames) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const name of session.inputNames) {
        const t = feeds[name];
        if (!t) throw new EaselError("E_INTERNAL", `missing input "${name}" for ${modelPath}`);
        ortFeeds[name] = toOrtTensor(name, t);
      }
      // onnxruntime-node 1.23 can label a requested subset of outputs with the wrong names, so every output is
      // fetched and the subset is picked here by name.
      const out = await session.run(ortFeeds);
      const result: Record<string, HostTensor> = {};
      for (const name of outputNames ?? session.outputNames) {
        const t = out[name];
        if (!t) throw new EaselError("E_INTERNAL", `${modelPath} has no output "${name}"`);
        result[name] = fromOrtTensor(name, t);
      }
      return result;
    },
    async release() {
      await session.release();
      trimNativeHeap();
    },
  };
}
