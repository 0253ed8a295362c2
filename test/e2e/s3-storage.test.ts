/**
 * `easel serve` with storage.s3 set, over a real S3-protocol server (s3rver on loopback) and the real engine with
 * the micro SD1.5 checkpoint: images go to the bucket (nothing under <dataDir>/images), signed URLs serve them
 * from there, a bucket that stops answering is a 502, and a bad bucket fails the start naming bucket and endpoint.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { GetObjectCommand, type GetObjectCommandOutput, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { startServer } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config/index.ts";
import { S3RVER_CREDENTIALS, startTestS3 } from "../helpers/s3.ts";

// What the AWS SDK's default chain reads, as on a deployed node (this file runs in a process of its own).
process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;

const s3 = await startTestS3();

if ("skip" in s3) {
  test("easel serve with S3 image storage", { skip: s3.skip }, () => {});
} else {
  const dataDir = mkdtempSync(join(tmpdir(), "easel-e2e-s3-"));
  mkdirSync(join(dataDir, "models"));
  symlinkSync(resolve("test/fixtures/models/sd15"), join(dataDir, "models", "sd15"));
  // Only the environment says where the images go, as an operator would.
  const config = (bucket: string) =>
    loadConfig({
      env: {
        EASEL_S3_BUCKET: bucket,
        EASEL_S3_ENDPOINT: s3.endpoint,
        EASEL_S3_FORCE_PATH_STYLE: "1",
        EASEL_S3_PREFIX: "node-a/images",
        EASEL_URL_SECRET: "s3-e2e-url-signing-secret-0123456789abcdef",
      },
      flags: { dataDir, server: { host: "127.0.0.1", port: 0 }, engine: { intraOpThreads: 2 } },
    });
  after(async () => {
    await s3.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe("easel serve with S3 image storage", () => {
    test("a bucket that does not exist fails the start, naming the bucket and the endpoint", async () => {
      await assert.rejects(startServer({ config: config("easel-missing"), log: () => {} }), (e: Error & { code?: string }) => {
        assert.equal(e.code, "E_INPUT_INVALID");
        assert.ok(e.message.startsWith(`cannot use S3 bucket "easel-missing" at ${s3.endpoint}: the bucket does not exist`), e.message);
        return true;
      });
    });

    test("images go to the bucket and signed URLs serve them from there; a bucket gone quiet is a 502", async () => {
      await s3.createBucket("easel-e2e");
      const server = await startServer({ config: config("easel-e2e"), log: () => {} });
      try {
        const res = await fetch(`${server.url}/v1/images/generations`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "sd15", prompt: "a lighthouse", size: "64x64", steps: 2, n: 2, response_format: "url" }),
        });
        const text = await res.text();
        assert.equal(res.status, 200, text);
        const urls = (JSON.parse(text) as { data: { url: string }[] }).data.map((d) => d.url);
        assert.equal(urls.length, 2);

        const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: "easel-e2e" }));
        const keys = (listed.Contents ?? []).map((o) => o.Key ?? "").sort();
        assert.equal(keys.length, 2, keys.join(", "));
        for (const k of keys) assert.match(k, /^node-a\/images\/[A-Za-z0-9._-]+$/);
        assert.equal(existsSync(join(dataDir, "images")), false, "nothing written to the local image directory");

        const inBucket = new Set<string>();
        for (const k of keys) {
          const o: GetObjectCommandOutput = await s3.client.send(new GetObjectCommand({ Bucket: "easel-e2e", Key: k }));
          assert.equal(o.ContentType, "image/png");
          inBucket.add(Buffer.from((await o.Body?.transformToByteArray()) ?? []).toString("base64"));
        }
        for (const url of urls) {
          const file = await fetch(url);
          assert.equal(file.status, 200);
          assert.equal(file.headers.get("content-type"), "image/png");
          const bytes = Buffer.from(await file.arrayBuffer());
          assert.deepEqual([...bytes.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
          assert.ok(inBucket.has(bytes.toString("base64")), "the URL serves the bucket's bytes");
        }

        await s3.close();
        const down = await fetch(urls[0]);
        assert.equal(down.status, 502);
        const body = await down.text();
        assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, "E_UPSTREAM_FAILED");
        assert.doesNotMatch(body, new RegExp(`${S3RVER_CREDENTIALS.secretAccessKey}|easel-e2e`));
      } finally {
        await server.close();
      }
    });
  });
}
