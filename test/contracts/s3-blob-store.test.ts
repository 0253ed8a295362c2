/**
 * The S3 driver against a real S3-protocol server (s3rver on loopback): the shared contract, once with a bucket of
 * its own per test and once inside a key prefix of a shared bucket; then the driver's own regressions (what list
 * leaves alone, start-up probe messages, request failures mapped to the error catalog).
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, describe, test } from "node:test";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { openS3BlobStore, type S3BlobStore, type S3BlobStoreOptions } from "../../src/storage/s3-blob-store.ts";
import { S3RVER_CREDENTIALS, startTestS3 } from "../helpers/s3.ts";
import { runBlobStoreContract } from "./blob-store.contract.ts";

const s3 = await startTestS3();

if ("skip" in s3) {
  test("s3 blob store contract", { skip: s3.skip }, () => {});
} else {
  const stores: S3BlobStore[] = [];
  const open = async (o: Partial<S3BlobStoreOptions> & { bucket: string }) => {
    const store = await openS3BlobStore({ endpoint: s3.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS, ...o });
    stores.push(store);
    return store;
  };
  after(async () => {
    for (const s of stores) s.close();
    await s3.close();
  });

  let n = 0;
  runBlobStoreContract("s3 blob store (bucket of its own)", async () => {
    const bucket = `easel-contract-${n++}`;
    await s3.createBucket(bucket);
    return open({ bucket });
  });

  await s3.createBucket("easel-shared");
  runBlobStoreContract("s3 blob store (key prefix)", async () => open({ bucket: "easel-shared", prefix: `node-${n++}/images` }));

  /** A loopback port nothing listens on. */
  async function closedPort(): Promise<number> {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const { port } = srv.address() as { port: number };
    await new Promise((r) => srv.close(r));
    return port;
  }

  describe("s3 blob store: its own regressions", () => {
    test("objects live at <prefix>/<key>; list leaves nested and foreign objects alone", async () => {
      await s3.createBucket("easel-layout");
      const store = await open({ bucket: "easel-layout", prefix: "easel/images/" });
      await store.put("abc", new Uint8Array([7, 8]), "image/png");
      const raw = await s3.client.send(new GetObjectCommand({ Bucket: "easel-layout", Key: "easel/images/abc" }));
      assert.deepEqual(await raw.Body?.transformToByteArray(), new Uint8Array([7, 8]));
      assert.equal(raw.ContentType, "image/png");
      for (const Key of ["easel/images/thumbs/abc", "easel/images/.hidden", "easel/other", "top-level"]) {
        await s3.client.send(new PutObjectCommand({ Bucket: "easel-layout", Key, Body: new Uint8Array([1]) }));
      }
      const listed = [];
      for await (const b of store.list()) listed.push(b.key);
      assert.deepEqual(listed, ["abc"]);
    });

    test("a missing bucket fails at open, naming the bucket and the endpoint", async () => {
      await assert.rejects(open({ bucket: "no-such-bucket" }), (e: Error & { code?: string }) => {
        assert.equal(e.code, "E_INPUT_INVALID");
        assert.match(e.message, /S3 bucket "no-such-bucket" at http:\/\/127\.0\.0\.1:\d+: the bucket does not exist/);
        return true;
      });
    });

    // s3rver checks the access key id but not SigV4 signatures, so a wrong secret is not refused here; on S3 it is
    // a 403 SignatureDoesNotMatch, which takes the same path as this 403 InvalidAccessKeyId (HeadBucket answers carry no body,
    // so the code is not known).
    test("unknown credentials fail at open, naming the bucket and the endpoint but not the secret", async () => {
      await s3.createBucket("easel-creds");
      const credentials = { accessKeyId: "UNKNOWNKEY", secretAccessKey: "secret-that-must-not-show" };
      await assert.rejects(open({ bucket: "easel-creds", credentials }), (e: Error & { code?: string }) => {
        assert.equal(e.code, "E_FORBIDDEN");
        assert.match(e.message, /^cannot use S3 bucket "easel-creds" at http:\/\/127\.0\.0\.1:\d+: access denied \(HTTP 403\); check AWS_ACCESS_KEY_ID/);
        assert.doesNotMatch(e.message, /secret-that-must-not-show/);
        return true;
      });
    });

    test("an unreachable endpoint fails at open, naming it (without user info)", async () => {
      const port = await closedPort();
      await assert.rejects(
        open({ bucket: "easel-shared", endpoint: `http://user:pw-in-url@127.0.0.1:${port}`, maxAttempts: 1 }),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, "E_UPSTREAM_FAILED");
          assert.equal(
            e.message,
            `cannot use S3 bucket "easel-shared" at http://127.0.0.1:${port}: the endpoint cannot be reached (ECONNREFUSED); check storage.s3.endpoint / EASEL_S3_ENDPOINT`,
          );
          return true;
        },
      );
    });

    test("a service that stops answering is E_UPSTREAM_FAILED; a bucket gone is E_INTERNAL; neither names secrets", async () => {
      await s3.createBucket("easel-gone");
      const gone = await open({ bucket: "easel-gone" });
      await s3.deleteBucket("easel-gone");
      await assert.rejects(gone.get("abc"), (e: Error & { code?: string }) => {
        assert.equal(e.code, "E_INTERNAL");
        assert.equal(e.message, "The image store refused S3 GetObject: NoSuchBucket (HTTP 404).");
        return true;
      });

      const other = await startTestS3();
      if ("skip" in other) return;
      await other.createBucket("easel-down");
      const store = await open({ bucket: "easel-down", endpoint: other.endpoint, maxAttempts: 2 });
      await store.put("abc", new Uint8Array([1]), "image/png");
      await other.close();
      for (const op of [() => store.get("abc"), () => store.has("abc"), () => store.put("d", new Uint8Array([1]), "image/png")]) {
        await assert.rejects(op(), (e: Error & { code?: string; retryable?: boolean }) => {
          assert.equal(e.code, "E_UPSTREAM_FAILED");
          assert.equal(e.retryable, true);
          assert.match(e.message, /^The image store is unavailable \(S3 \w+: ECONNREFUSED\); try again\.$/);
          return true;
        });
      }
    });
  });
}
