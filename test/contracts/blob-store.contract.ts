/** The BlobStore contract suite: `runBlobStoreContract(name, () => makeEmptyStore())`. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import type { BlobStore } from "../../src/storage/blob-store.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

export function runBlobStoreContract(name: string, makeStore: () => Promise<BlobStore>): void {
  test(`${name}: put, get, has, delete`, async () => {
    const s = await makeStore();
    const bytes = new Uint8Array([1, 2, 3, 250]);
    const key = sha(bytes);
    assert.equal(await s.get(key), undefined);
    assert.equal(await s.has(key), false);
    await s.put(key, bytes, "image/png");
    assert.deepEqual(await s.get(key), bytes);
    assert.equal(await s.has(key), true);
    await s.put(key, bytes, "image/png"); // content-addressed: storing again is harmless
    assert.deepEqual(await s.get(key), bytes);
    await s.delete(key);
    assert.equal(await s.get(key), undefined);
    await s.delete(key); // absent is fine
  });

  test(`${name}: overwrite, large objects, concurrent writers of one key`, async () => {
    const s = await makeStore();
    await s.put("k", new Uint8Array([1]), "application/octet-stream");
    await s.put("k", new Uint8Array([2, 2]), "application/octet-stream");
    assert.deepEqual(await s.get("k"), new Uint8Array([2, 2]));
    const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 31) & 255);
    await Promise.all(Array.from({ length: 5 }, () => s.put("big", big, "image/png")));
    const back = await s.get("big");
    assert.equal(back?.length, big.length);
    assert.equal(sha(back!), sha(big));
  });

  test(`${name}: list reports every object with its size`, async () => {
    const s = await makeStore();
    const keys = ["aa1", "ab2", "zz-3", "x"];
    for (const [i, k] of keys.entries()) await s.put(k, new Uint8Array(i + 1), "image/png");
    const seen = new Map<string, number>();
    for await (const b of s.list()) {
      seen.set(b.key, b.size);
      assert.ok(b.modifiedAt > 0);
    }
    assert.deepEqual([...seen.keys()].sort(), [...keys].sort());
    for (const [i, k] of keys.entries()) assert.equal(seen.get(k), i + 1);
  });

  test(`${name}: rejects keys that could escape or hide`, async () => {
    const s = await makeStore();
    for (const bad of ["", "../etc", "a/b", ".hidden", "a b", "x".repeat(201)]) {
      await assert.rejects(s.put(bad, new Uint8Array([1]), "image/png"), { code: "E_INPUT_INVALID" }, bad);
      await assert.rejects(s.get(bad), { code: "E_INPUT_INVALID" }, bad);
    }
  });
}
