/**
 * BlobStore on a local directory. Objects live at <root>/<k0k1>/<key> (two-character fan-out keeps directories
 * small); writes go to a temporary file that is fsynced and renamed into place, so a crash never leaves a
 * partial object under its final name. Objects are created 0600 and directories 0700 (images are the users'
 * own: only the server's account reads them).
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { assertBlobKey, type BlobInfo, type BlobStore } from "./blob-store.ts";

const TMP_SUFFIX = ".tmp";

export function createFsBlobStore(root: string): BlobStore {
  const dirOf = (key: string) => join(root, key.slice(0, 2).padEnd(2, "_"));
  const pathOf = (key: string) => join(dirOf(key), key);

  return {
    driver: "fs",

    async put(key, bytes) {
      assertBlobKey(key);
      const dir = dirOf(key);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const tmp = join(dir, `.${key}.${randomBytes(6).toString("hex")}${TMP_SUFFIX}`);
      const fh = await open(tmp, "w", 0o600);
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await rename(tmp, pathOf(key));
      } catch (e) {
        await unlink(tmp).catch(() => undefined);
        throw e;
      }
    },

    async get(key) {
      assertBlobKey(key);
      try {
        return new Uint8Array(await readFile(pathOf(key)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
      }
    },

    async has(key) {
      assertBlobKey(key);
      try {
        return (await stat(pathOf(key))).isFile();
      } catch {
        return false;
      }
    },

    async delete(key) {
      assertBlobKey(key);
      await rm(pathOf(key), { force: true });
    },

    async *list(): AsyncIterable<BlobInfo> {
      let dirs: string[];
      try {
        dirs = await readdir(root);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
        throw e;
      }
      for (const d of dirs) {
        let names: string[];
        try {
          names = await readdir(join(root, d));
        } catch {
          continue;
        }
        for (const name of names) {
          if (name.startsWith(".")) continue; // temporary files of writes in progress (or of a crash)
          const st = await stat(join(root, d, name)).catch(() => undefined);
          if (st?.isFile()) yield { key: name, size: st.size, modifiedAt: st.mtimeMs };
        }
      }
    },
  };
}
