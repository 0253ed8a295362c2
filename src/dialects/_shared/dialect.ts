/**
 * What every API dialect provides to the server: its routes, its error body, and the URL prefixes whose
 * unknown paths it answers. The server composes dialects; dialects never import each other.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { FastifyInstance } from "fastify";
import type { Config } from "../../config/index.ts";
import type { EaselError } from "../../core/errors.ts";
import type { ImageService, Principal } from "../../core/image-service.ts";
import type { PromptService } from "../../prompts/index.ts";

/**
 * What a dialect reads of a request to claim it or to add its headers: a FastifyRequest, or the request line and
 * headers of a request the HTTP parser rejected (headers too large, a timeout) before Fastify saw it.
 */
export interface RequestHead {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  easelPrincipal?: Principal;
}

/** A request answered inside the server (the dialect's own route run in-process), as it would go out. */
export interface ForwardedAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface DialectDeps {
  images: ImageService;
  config: Config;
  /** Style presets and prompt checks (prompts/); default: one made from config (dialects/_shared/prompt-fields.ts). */
  prompts?: PromptService;
  /**
   * Set by the server: runs a body of dialect `dialect` through that dialect's generation route with
   * `Prefer: respond-async` (for `POST /v1/jobs`); `dialects` are the ids it accepts.
   */
  submitAsync?: {
    dialects: readonly string[];
    forward(dialect: string, body: unknown, headers: Record<string, string>): Promise<ForwardedAnswer>;
  };
}

/** A dialect's rendering of an EaselError: status, body (undefined = empty) and extra headers. */
export interface ErrorReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface Dialect {
  /** Recorded with every job ("openai", "monica-sd", ...). */
  id: string;
  /** OpenAPI tag. */
  title: string;
  /** Paths under these prefixes that match no route are answered in this dialect's 404 shape. */
  prefixes: string[];
  /** Claims an unmatched request under a prefix shared with another dialect (e.g. Segmind's x-api-key under /v1/). */
  claims?(req: RequestHead): boolean;
  register(app: FastifyInstance, deps: DialectDeps): Promise<void>;
  /** Its generation route, for `POST /v1/jobs` bodies that name this dialect (absent: not submittable there). */
  submitPath?: string;
  errorReply(e: EaselError): ErrorReply;
  /** Headers on every response of this dialect, errors included (Segmind's x-remaining-credits). */
  commonHeaders?(req: RequestHead, deps: DialectDeps): Promise<Record<string, string>>;
}
