import type { GenerationEvent, GenerationRequest, GenerationResult, ModelInfo } from "./types.ts";

/** Who is asking, as established by the HTTP layer. */
export interface RequestContext {
  dialect: string;
  /** Raw API key as sent by the client (undefined when none was sent). */
  apiKey?: string;
  idempotencyKey?: string;
  signal?: AbortSignal;
  /** Called for progress and preview frames while the job runs. */
  onEvent?: (e: GenerationEvent) => void;
}

/** What dialects see of the rest of Easel. Dialects never talk to the engine or providers directly. */
export interface ImageService {
  generate(req: GenerationRequest, ctx: RequestContext): Promise<GenerationResult>;
  listModels(): ModelInfo[];
  /** Resolves a public model name or alias; undefined when not installed. */
  findModel(name: string): ModelInfo | undefined;
}
