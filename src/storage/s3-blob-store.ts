/**
 * BlobStore on an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2, ...) through @aws-sdk/client-s3. Objects live
 * at <prefix><key>; a PUT replaces an object whole, so readers never see a partial one. Credentials come from the
 * AWS SDK's default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, instance roles).
 *
 * The bucket (or the prefix inside it) belongs to Easel: retention deletes objects there that no image row names.
 * Only objects directly under the prefix whose names are valid blob keys are listed, so other "folders" are left
 * alone. Permissions needed: s3:ListBucket (HeadBucket, and HeadObject of a missing key answers 404, not 403),
 * s3:GetObject, s3:PutObject, s3:DeleteObject.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { EaselError } from "../core/errors.ts";
import { assertBlobKey, type BlobInfo, type BlobStore, isBlobKey } from "./blob-store.ts";

export interface S3BlobStoreOptions {
  bucket: string;
  /** Base URL of an S3-compatible service; unset: AWS S3 in `region`. */
  endpoint?: string;
  /** Signing region; S3-compatible services mostly accept any. Default us-east-1. */
  region?: string;
  /** Address the bucket as <endpoint>/<bucket> instead of <bucket>.<endpoint> (MinIO and most self-hosted stores). */
  forcePathStyle?: boolean;
  /** Key prefix, a "folder" such as `easel/images` (a trailing slash is added). */
  prefix?: string;
  /** Explicit credentials; unset: the AWS SDK's default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Attempts per request, the first included (the SDK's standard retry with backoff). Default 3. */
  maxAttempts?: number;
}

export interface S3BlobStore extends BlobStore {
  readonly bucket: string;
  /** Closes the client's connections. */
  close(): void;
}

/** The facts of an SDK or network failure that are safe to show: never headers, bodies or credential fields. */
interface FailureFacts {
  /** S3 error code ("NoSuchKey", "AccessDenied", "SlowDown"), or a socket error code ("ECONNREFUSED"). */
  code: string;
  /** HTTP status, when the service answered. */
  status?: number;
}

function failureFacts(e: unknown): FailureFacts {
  const err = e as { name?: string; code?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  const status = err?.$metadata?.httpStatusCode;
  // Socket errors keep their code (ECONNREFUSED, ENOTFOUND); the SDK names service errors by their S3 code.
  const code = typeof err?.code === "string" && /^E[A-Z_]+$/.test(err.code) ? err.code : (err?.Code ?? err?.name ?? "Error");
  // Answers to HEAD requests have no body, so the SDK knows no code for them ("Unknown", "NotFound", "403").
  const known = code !== "Unknown" && !/^\d+$/.test(String(code));
  return { code: known ? String(code).slice(0, 64) : "", ...(status ? { status } : {}) };
}

function describeFailure(f: FailureFacts): string {
  if (!f.status) return f.code || "no answer";
  return f.code ? `${f.code} (HTTP ${f.status})` : `HTTP ${f.status}`;
}

/**
 * Transient: the service answered 5xx / 429 / throttling, or did not answer at all (socket error, timeout), or the
 * credential source (an instance role, say) did not answer.
 */
function isTransient(f: FailureFacts): boolean {
  if (f.status === undefined) return /^E[A-Z_]+$/.test(f.code) || ["TimeoutError", "CredentialsProviderError"].includes(f.code);
  return f.status >= 500 || f.status === 429 || f.code === "SlowDown" || f.code === "RequestTimeout";
}

/** A failure during a request, mapped to the error catalog without the bucket, endpoint or credentials. */
function requestError(operation: string, e: unknown): EaselError {
  if (e instanceof EaselError) return e;
  const f = failureFacts(e);
  if (isTransient(f)) {
    return new EaselError("E_UPSTREAM_FAILED", `The image store is unavailable (S3 ${operation}: ${describeFailure(f)}); try again.`);
  }
  return new EaselError("E_INTERNAL", `The image store refused S3 ${operation}: ${describeFailure(f)}.`);
}

/** The endpoint as it may be printed: no user info, no query. */
function printableEndpoint(endpoint: string | undefined, region: string): string {
  if (!endpoint) return `AWS S3 (${region})`;
  try {
    const u = new URL(endpoint);
    return `${u.protocol}//${u.host}${u.pathname === "/" ? "" : u.pathname}`;
  } catch {
    return "(unparsable endpoint)";
  }
}

/** Why HeadBucket failed at start-up, in words an operator can act on. */
function probeError(bucket: string, where: string, region: string, e: unknown): EaselError {
  const f = failureFacts(e);
  const at = `S3 bucket "${bucket}" at ${where}`;
  if ((e as Error)?.name === "CredentialsProviderError") {
    return new EaselError(
      "E_FORBIDDEN",
      `cannot use ${at}: no credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or another source of the AWS SDK's default chain)`,
    );
  }
  if (f.status === 404 || f.code === "NoSuchBucket" || f.code === "NotFound") {
    return new EaselError("E_INPUT_INVALID", `cannot use ${at}: the bucket does not exist (create it, or fix storage.s3.bucket / EASEL_S3_BUCKET)`, {
      param: "storage.s3.bucket",
    });
  }
  if (f.status === 401 || f.status === 403) {
    return new EaselError(
      "E_FORBIDDEN",
      `cannot use ${at}: access denied (${describeFailure(f)}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and that they may list, read and write this bucket`,
    );
  }
  if (f.status === 301) {
    const actual = (e as { $response?: { headers?: Record<string, string> } }).$response?.headers?.["x-amz-bucket-region"];
    return new EaselError(
      "E_INPUT_INVALID",
      `cannot use ${at}: the bucket is in ${actual ? `region ${actual}` : "another region"}, not ${region}; set storage.s3.region / EASEL_S3_REGION`,
      { param: "storage.s3.region" },
    );
  }
  if (f.status === undefined && isTransient(f)) {
    return new EaselError(
      "E_UPSTREAM_FAILED",
      `cannot use ${at}: the endpoint cannot be reached (${f.code}); check storage.s3.endpoint / EASEL_S3_ENDPOINT`,
    );
  }
  return new EaselError(isTransient(f) ? "E_UPSTREAM_FAILED" : "E_INTERNAL", `cannot use ${at}: HeadBucket failed with ${describeFailure(f)}`);
}

/** The object is absent (a 404 that is not about the bucket; answers to HEAD carry no code at all). */
function isNotFound(e: unknown): boolean {
  const f = failureFacts(e);
  return f.status === 404 && f.code !== "NoSuchBucket";
}

function s3Client(opts: S3BlobStoreOptions): S3Client {
  return new S3Client({
    region: opts.region ?? "us-east-1",
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    forcePathStyle: opts.forcePathStyle ?? false,
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
    maxAttempts: opts.maxAttempts ?? 3,
    // A silent endpoint fails the request instead of hanging it.
    requestHandler: { connectionTimeout: 5_000, socketTimeout: 30_000 },
  });
}

/** The driver over a client it owns (close() destroys it). */
function s3BlobStore(client: S3Client, opts: S3BlobStoreOptions): S3BlobStore {
  const { bucket } = opts;
  const prefix = opts.prefix ? opts.prefix.replace(/\/*$/, "/") : "";
  const objectKey = (key: string) => prefix + key;

  return {
    driver: "s3",
    bucket,

    async put(key, bytes, contentType) {
      assertBlobKey(key);
      try {
        await client.send(
          new PutObjectCommand({ Bucket: bucket, Key: objectKey(key), Body: bytes, ContentType: contentType, ContentLength: bytes.byteLength }),
        );
      } catch (e) {
        throw requestError("PutObject", e);
      }
    },

    async get(key) {
      assertBlobKey(key);
      try {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: objectKey(key) }));
        if (!out.Body) return new Uint8Array(0);
        return await out.Body.transformToByteArray();
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw requestError("GetObject", e);
      }
    },

    async has(key) {
      assertBlobKey(key);
      try {
        await client.send(new HeadObjectCommand({ Bucket: bucket, Key: objectKey(key) }));
        return true;
      } catch (e) {
        if (isNotFound(e)) return false;
        throw requestError("HeadObject", e);
      }
    },

    async delete(key) {
      assertBlobKey(key);
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey(key) }));
      } catch (e) {
        if (isNotFound(e)) return;
        throw requestError("DeleteObject", e);
      }
    },

    async *list(): AsyncIterable<BlobInfo> {
      const pages = paginateListObjectsV2({ client }, { Bucket: bucket, Prefix: prefix, Delimiter: "/" });
      try {
        for await (const page of pages) {
          for (const o of page.Contents ?? []) {
            const key = o.Key?.slice(prefix.length);
            if (!key || !isBlobKey(key)) continue; // not an object Easel wrote
            yield { key, size: o.Size ?? 0, modifiedAt: o.LastModified?.getTime() ?? 0 };
          }
        }
      } catch (e) {
        throw requestError("ListObjectsV2", e);
      }
    },

    close() {
      client.destroy();
    },
  };
}

/**
 * The S3 driver, after HeadBucket has shown that the bucket exists and the credentials may use it: a missing
 * bucket, bad credentials or an unreachable endpoint fail here, at start-up, with an error that names the bucket
 * and the endpoint.
 */
export async function openS3BlobStore(opts: S3BlobStoreOptions): Promise<S3BlobStore> {
  const client = s3Client(opts);
  const region = opts.region ?? "us-east-1";
  try {
    await client.send(new HeadBucketCommand({ Bucket: opts.bucket }));
  } catch (e) {
    client.destroy();
    throw probeError(opts.bucket, printableEndpoint(opts.endpoint, region), region, e);
  }
  return s3BlobStore(client, opts);
}
