import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { EaselError } from "../core/errors.ts";
import { loadConfig } from "./index.ts";

test("storage.s3 is absent by default: images stay in the data directory", () => {
  assert.equal(loadConfig({ env: {} }).storage.s3, undefined);
});

test("storage.s3 from the environment, with defaults for what is not given", () => {
  const c = loadConfig({ env: { EASEL_S3_BUCKET: "easel-images" } });
  assert.deepEqual(c.storage.s3, { bucket: "easel-images", region: "us-east-1", forcePathStyle: false });

  const all = loadConfig({
    env: {
      EASEL_S3_BUCKET: "easel-images",
      EASEL_S3_ENDPOINT: "http://minio.internal:9000",
      EASEL_S3_REGION: "eu-central-1",
      EASEL_S3_FORCE_PATH_STYLE: "1",
      EASEL_S3_PREFIX: "prod/images",
    },
  });
  assert.deepEqual(all.storage.s3, {
    bucket: "easel-images",
    endpoint: "http://minio.internal:9000",
    region: "eu-central-1",
    forcePathStyle: true,
    prefix: "prod/images",
  });
  assert.ok(Object.isFrozen(all.storage.s3));
  assert.equal(loadConfig({ env: { EASEL_S3_BUCKET: "b", EASEL_S3_FORCE_PATH_STYLE: "true" } }).storage.s3?.forcePathStyle, true);
  assert.equal(loadConfig({ env: { EASEL_S3_BUCKET: "b", EASEL_S3_FORCE_PATH_STYLE: "0" } }).storage.s3?.forcePathStyle, false);
});

test("the environment overrides the file's storage.s3 key by key; flags override both", () => {
  const dir = mkdtempSync(join(tmpdir(), "easel-config-"));
  const file = join(dir, "easel.json");
  const fromFile = { bucket: "file-bucket", endpoint: "http://s3.file:9000", forcePathStyle: true, prefix: "a/b/" };
  writeFileSync(file, JSON.stringify({ storage: { s3: fromFile } }));
  const c = loadConfig({ file, env: { EASEL_S3_BUCKET: "env-bucket", EASEL_S3_REGION: "ap-south-1" } });
  assert.deepEqual(c.storage.s3, { ...fromFile, bucket: "env-bucket", region: "ap-south-1" });
  const f = loadConfig({ file, env: { EASEL_S3_BUCKET: "env-bucket" }, flags: { storage: { s3: { bucket: "flag-bucket" } } } });
  assert.equal(f.storage.s3?.bucket, "flag-bucket");
  assert.equal(f.storage.s3?.endpoint, "http://s3.file:9000");
});

test("storage.s3 without a bucket, or with a bad endpoint or prefix, is refused with the key named", () => {
  const refuses = (env: Record<string, string>, param: string, message: RegExp) =>
    assert.throws(
      () => loadConfig({ env }),
      (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === param && message.test(e.message),
    );
  refuses({ EASEL_S3_ENDPOINT: "http://127.0.0.1:9000" }, "storage.s3.bucket", /storage\.s3\.bucket \(EASEL_S3_BUCKET\) is required/);
  for (const prefix of ["easel", "easel/images/", "a.b/..c/_d-e"]) {
    assert.equal(loadConfig({ env: { EASEL_S3_BUCKET: "b", EASEL_S3_PREFIX: prefix } }).storage.s3?.prefix, prefix);
  }
  refuses({ EASEL_S3_BUCKET: "b", EASEL_S3_ENDPOINT: "not a url" }, "storage.s3.endpoint", /storage\.s3\.endpoint/);
  for (const prefix of ["/abs", "a//b", "a b", "../up/", "a/./b", "a/.."]) {
    refuses({ EASEL_S3_BUCKET: "b", EASEL_S3_PREFIX: prefix }, "storage.s3.prefix", /prefix must be folder names/);
  }
});
