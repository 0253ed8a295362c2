import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { trimNativeHeap } from "./native-heap.ts";

const glibc = process.platform === "linux" && (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined;

test("trimNativeHeap calls glibc's malloc_trim where there is one, and does nothing elsewhere", () => {
  assert.equal(trimNativeHeap(), glibc);
  assert.equal(trimNativeHeap(), glibc, "callable again (the binding is loaded once)");
});

test("trimNativeHeap gives freed C-heap pages back to the system", { skip: !glibc && "needs glibc" }, () => {
  // A child process fills its C heap with 2,000 blocks of 96 KiB (under glibc's mmap threshold, so they come from
  // the heap), touches them, frees every other one (holes glibc keeps, since live blocks sit on either side), then
  // trims: its resident set must fall by most of the 94 MiB freed.
  const script = `
    import { readFileSync } from "node:fs";
    import { createRequire } from "node:module";
    import { trimNativeHeap } from ${JSON.stringify(new URL("./native-heap.ts", import.meta.url).href)};
    const koffi = createRequire(${JSON.stringify(import.meta.url)})("koffi");
    const libc = koffi.load("libc.so.6");
    const malloc = libc.func("void *malloc(size_t)");
    const memset = libc.func("void *memset(void *, int, size_t)");
    const free = libc.func("void free(void *)");
    const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]) * 1024;
    const blocks = [];
    for (let i = 0; i < 2000; i++) { const p = malloc(96 * 1024); memset(p, 1, 96 * 1024); blocks.push(p); }
    for (let i = 0; i < blocks.length; i += 2) free(blocks[i]);
    const before = rss();
    trimNativeHeap();
    const after = rss();
    for (let i = 1; i < blocks.length; i += 2) free(blocks[i]);
    process.stdout.write(JSON.stringify({ before, after }));
  `;
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" });
  const { before, after } = JSON.parse(out) as { before: number; after: number };
  assert.ok(before - after > 80 * 1024 ** 2, `resident ${(before / 2 ** 20).toFixed(0)} MiB -> ${(after / 2 ** 20).toFixed(0)} MiB`);
});
