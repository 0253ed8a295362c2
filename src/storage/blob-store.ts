/**
 * The blob store contract: opaque bytes under string keys. The filesystem driver (fs-blob-store.ts) and an
 * S3-compatible one implement it and run test/contracts/blob-store.contract.ts. Images are stored under their
 * sha256 (content-addressed), so a put of an existing key is a no-op in effect.
 */
import { EaselError } from "../core/errors.ts";

export interface BlobInfo {
  key: string;
  size: number;
  /** Last write, ms since the epoch. */
  modifiedAt: number;
}

export interface BlobStore {
  readonly driver: string;
  /** Writes atomically: a reader sees the old bytes, the new bytes, or nothing, never a partial object. */
  put(key: string, bytes: Uint8Array, contentType: string): Promise<void>;
  /** The bytes, or undefined when absent. */
  get(key: string): Promise<Uint8Array | undefined>;
  has(key: string): Promise<boolean>;
  /** Removes the key; absent keys are fine. */
  delete(key: string): Promise<void>;
  /** Every stored object, in no particular order. */
  list(): AsyncIterable<BlobInfo>;
}

/** Keys are 1-200 characters of [A-Za-z0-9._-], not starting with a dot (safe as a file name and S3 key). */
export function isBlobKey(key: string): boolean {
  return /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/.test(key);
}

export function assertBlobKey(key: string): void {
  if (!isBlobKey(key)) {
    throw new EaselError("E_INPUT_INVALID", `invalid blob key ${JSON.stringify(key)}: 1-200 of [A-Za-z0-9._-]`, {
      param: "key",
    });
  }
}
