/** API keys for tests that start the real server on a data dir: made in its SQLite database before (or beside) the server. */
import { createKeyAdmin, type KeyAdmin } from "../../src/jobs/api-keys.ts";
import { openSqliteStore } from "../../src/storage/sqlite.ts";

/** Runs `f` with the key admin of the SQLite database at `dbPath` (a data dir's easel.db), opened for the call and closed after it. */
export async function withSqliteKeys<T>(dbPath: string, f: (keys: KeyAdmin) => Promise<T>): Promise<T> {
  const store = await openSqliteStore(dbPath);
  try {
    return await f(createKeyAdmin({ store }));
  } finally {
    await store.close();
  }
}
