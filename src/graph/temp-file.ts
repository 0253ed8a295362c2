/**
 * Writing a weight file so that no reader ever sees half of it: the bytes go to a temporary name beside `file`,
 * which is renamed into place once `write` has finished; when `write` throws, the temporary file is removed and the
 * error passes on. The temporary name carries the process id and a random part, so two writers of the same file
 * (two processes, or two calls in one) never share one.
 */
import { closeSync, mkdirSync, openSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";

export interface TempFileOptions {
  /** File mode of the new file (default 0o666 less the umask, as openSync does). */
  mode?: number;
}

function openTemp(file: string, opts: TempFileOptions): { tmp: string; fd: number } {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  return { tmp, fd: openSync(tmp, "w", opts.mode) };
}

function finish(tmp: string, fd: number, file: string): void {
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function abandon(tmp: string, fd: number): void {
  closeSync(fd);
  rmSync(tmp, { force: true });
}

/** Creates `file` (and its folder) from what `write` writes to the descriptor it is given; see the module comment. */
export function writeFileThroughTemp<T>(file: string, write: (fd: number) => T, opts: TempFileOptions = {}): T {
  const { tmp, fd } = openTemp(file, opts);
  let result: T;
  try {
    result = write(fd);
  } catch (e) {
    abandon(tmp, fd);
    throw e;
  }
  finish(tmp, fd, file);
  return result;
}

/** writeFileThroughTemp for a `write` that awaits between its writes. */
export async function writeFileThroughTempAsync<T>(file: string, write: (fd: number) => Promise<T>, opts: TempFileOptions = {}): Promise<T> {
  const { tmp, fd } = openTemp(file, opts);
  let result: T;
  try {
    result = await write(fd);
  } catch (e) {
    abandon(tmp, fd);
    throw e;
  }
  finish(tmp, fd, file);
  return result;
}
