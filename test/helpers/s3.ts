/**
 * A real S3-protocol server for tests: s3rver (npm) in this process, on a loopback port, over a temporary
 * directory. It checks request signatures against its fixed key pair, so wrong credentials are refused as on S3.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from "@aws-sdk/client-s3";
import S3rver from "s3rver";

/** s3rver's built-in key pair. */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

export interface TestS3 {
  endpoint: string;
  port: number;
  /** A client with the right credentials, for setting up and looking behind the driver. */
  client: S3Client;
  createBucket(name: string): Promise<void>;
  deleteBucket(name: string): Promise<void>;
  /** Stops the server and removes its directory; closing twice is fine. */
  close(): Promise<void>;
}

/** Starts s3rver, or answers why it could not start (the caller skips with that reason). */
export async function startTestS3(): Promise<TestS3 | { skip: string }> {
  const dir = mkdtempSync(join(tmpdir(), "easel-s3rver-"));
  // s3rver's own run() leaves a listen error unhandled, so it serves through a server started here.
  const http = createServer();
  let port: number;
  try {
    http.on("request", new S3rver({ silent: true, directory: dir }).callback());
    port = await new Promise<number>((resolve, reject) => {
      http.once("error", reject);
      http.listen(0, "127.0.0.1", () => {
        http.off("error", reject);
        resolve((http.address() as AddressInfo).port);
      });
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `s3rver could not start on 127.0.0.1: ${(e as Error).message}` };
  }
  const endpoint = `http://127.0.0.1:${port}`;
  let closing: Promise<void> | undefined;
  const client = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
  return {
    endpoint,
    port,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async deleteBucket(name) {
      await client.send(new DeleteBucketCommand({ Bucket: name }));
    },
    close() {
      closing ??= (async () => {
        client.destroy();
        http.closeAllConnections();
        await new Promise((r) => http.close(r));
        rmSync(dir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
