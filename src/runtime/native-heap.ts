/**
 * Gives the C heap's free pages back to the system (glibc `malloc_trim(0)`).
 *
 * onnxruntime allocates through malloc. Creating a session constant-folds and re-lays out weights through many
 * temporary buffers, and glibc keeps the freed pages between live blocks. Measured (resident set after
 * `InferenceSession.create`): SD1.5's UNet 3.62 GiB, 3.31 GiB once trimmed, with the same speed per call afterwards;
 * SDXL's UNet 11.33 GiB, 9.68 GiB with those pages returned (float32 weights: 9.56 GiB); SDXL at 1024² end to end
 * peaks at 16.2 GiB instead of 18.1 (docs/models.md). Lowering glibc's mmap threshold (`MALLOC_MMAP_THRESHOLD_`)
 * returns the same memory, but must be set before the process starts and made every UNet call 25% slower (fresh
 * pages for every activation); trimming once after the work that leaves the holes costs milliseconds.
 *
 * Node has no binding for malloc_trim, so it is called through koffi (a maintained FFI library with prebuilt
 * binaries). Without glibc (macOS, musl, Windows) this does nothing.
 */
import { createRequire } from "node:module";

type Trim = (pad: number) => number;

let trim: Trim | null | undefined;

function load(): Trim | null {
  if (process.platform !== "linux") return null;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
    return koffi.load("libc.so.6").func("int malloc_trim(size_t pad)") as Trim;
  } catch {
    return null; // not glibc (musl has no libc.so.6 / malloc_trim), or koffi has no build for this platform
  }
}

/** Returns free heap pages to the system; true when glibc's malloc_trim ran. */
export function trimNativeHeap(): boolean {
  if (trim === undefined) trim = load();
  if (!trim) return false;
  trim(0);
  return true;
}
