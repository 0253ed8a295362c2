/**
 * One server per data directory. The lock is an exclusive SQLite transaction held open on `<dataDir>/easel.lock`
 * for the life of the server. SQLite's file locks (POSIX fcntl locks, which SQLite also tracks across connections
 * inside one process) are dropped by the operating system when the process ends, kill -9 included, so a crashed
 * server never leaves a stale lock behind and no pid has to be trusted. Written this way because Node has no
 * flock of its own, a pid file alone cannot be taken over without a race, and proper-lockfile's mtime-based
 * staleness makes a restart after a crash wait out its stale period.
 *
 * Who holds the lock is written beside it (`easel.lock.json`), only ever by the holder, so that a second server
 * can say which process is in the way.
 */
import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import { EaselError } from "../core/errors.ts";

export const LOCK_FILE = "easel.lock";
export const HOLDER_FILE = "easel.lock.json";

export interface LockHolder {
  /** Instance id of the server (recorded as the owner of its jobs). */
  instance: string;
  pid: number;
  host: string;
  /** ISO time the server started. */
  startedAt: string;
  /** Where it listens, once it does. */
  url?: string;
}

export interface DataDirLock {
  readonly holder: LockHolder;
  /** Records where the server listens (shown to a second server that is refused). */
  setUrl(url: string): void;
  /** Gives the directory up (also happens when the process ends, however it ends). */
  release(): void;
}

function describe(h: Partial<LockHolder> | undefined): string {
  if (!h || typeof h.pid !== "number") return "another Easel server (its details are not recorded yet)";
  const parts = [h.host ? `pid ${h.pid} on ${h.host}` : `pid ${h.pid}`];
  if (h.startedAt) parts.push(`started ${h.startedAt}`);
  if (h.url) parts.push(`listening on ${h.url}`);
  return `another Easel server (${parts.join(", ")})`;
}

function readHolder(dir: string): Partial<LockHolder> | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, HOLDER_FILE), "utf8")) as Partial<LockHolder>;
  } catch {
    return undefined;
  }
}

function writeHolder(dir: string, h: LockHolder): void {
  const tmp = join(dir, `.${HOLDER_FILE}.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(h)}\n`, { mode: 0o600 });
  renameSync(tmp, join(dir, HOLDER_FILE));
}

/**
 * Takes the data directory's lock (the directory must exist) or throws E_FORBIDDEN naming the server that holds
 * it. The lock and holder files are created 0600.
 */
export function lockDataDir(dir: string, holder: LockHolder): DataDirLock {
  const file = join(dir, LOCK_FILE);
  closeSync(openSync(file, "a", 0o600));
  // timeout 0: a held lock is answered at once (SQLITE_BUSY) instead of after a busy wait.
  const db = new SqliteDatabase(file, { timeout: 0 });
  try {
    db.exec("BEGIN EXCLUSIVE");
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code !== "SQLITE_BUSY") throw e;
    const other = readHolder(dir);
    throw new EaselError(
      "E_FORBIDDEN",
      `the data directory ${dir} is in use by ${describe(other)}; stop that server first, or give this one another --data-dir`,
      { details: { holder: other ?? null } },
    );
  }
  let current = { ...holder };
  writeHolder(dir, current);
  let released = false;
  return {
    get holder() {
      return current;
    },
    setUrl(url) {
      if (released) return;
      current = { ...current, url };
      writeHolder(dir, current);
    },
    release() {
      if (released) return;
      released = true;
      // The holder file goes first, so that whoever takes the lock next never finds this server's details in it.
      if (readHolder(dir)?.instance === current.instance) {
        try {
          unlinkSync(join(dir, HOLDER_FILE));
        } catch {
          // already gone
        }
      }
      db.close();
    },
  };
}
