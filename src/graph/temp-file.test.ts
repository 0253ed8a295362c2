import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { writeFileThroughTemp, writeFileThroughTempAsync } from "./temp-file.ts";

const work = mkdtempSync(join(tmpdir(), "easel-tempfile-"));
after(() => rmSync(work, { recursive: true, force: true }));

test("writeFileThroughTemp: the file appears (folder created) with what was written and the mode asked for; no temporary file stays", () => {
  const file = join(work, "a", "b", "w.bin");
  const r = writeFileThroughTemp(file, (fd) => writeSync(fd, new Uint8Array([1, 2, 3])), { mode: 0o600 });
  assert.equal(r, 3);
  assert.deepEqual([...readFileSync(file)], [1, 2, 3]);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(join(work, "a", "b")), ["w.bin"]);
});

test("writeFileThroughTemp: when the writer throws, the error passes on, no file is made and the temporary one is removed", () => {
  const dir = join(work, "fail");
  const file = join(dir, "w.bin");
  assert.throws(
    () =>
      writeFileThroughTemp(file, (fd) => {
        writeSync(fd, new Uint8Array([1]));
        throw new Error("disk full");
      }),
    /disk full/,
  );
  assert.deepEqual(readdirSync(dir), []);
});

test("writeFileThroughTempAsync: the same for a writer that awaits, on success and on failure", async () => {
  const dir = join(work, "async");
  const file = join(dir, "w.bin");
  await assert.rejects(
    writeFileThroughTempAsync(file, async (fd) => {
      writeSync(fd, new Uint8Array([1]));
      await new Promise((r) => setTimeout(r, 1));
      throw new Error("merge failed");
    }),
    /merge failed/,
  );
  assert.deepEqual(readdirSync(dir), []);
  await writeFileThroughTempAsync(file, async (fd) => {
    await new Promise((r) => setTimeout(r, 1));
    writeSync(fd, new Uint8Array([7, 8]));
  });
  assert.deepEqual([...readFileSync(file)], [7, 8]);
  assert.deepEqual(readdirSync(dir), ["w.bin"]);
});
