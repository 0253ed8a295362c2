/**
 * Server instance identity: who owns a job. An instance id names the host, the process and when that process
 * started, so that another process on the same host can tell whether the owner still runs (a pid alone may have
 * been reused). Across hosts nothing can be told from an id; the scale-out store will hold leases for that.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";

/** Linux: when the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat); null elsewhere. */
export function processStartTicks(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may contain spaces: count fields after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return /^\d+$/.test(fields[19] ?? "") ? fields[19] : null;
  } catch {
    return null;
  }
}

/** A new id for this process: `inst_<random>@<host>:<pid>:<start ticks or ->`. */
export function newInstanceId(): string {
  return `inst_${randomBytes(6).toString("hex")}@${hostname()}:${process.pid}:${processStartTicks(process.pid) ?? "-"}`;
}

const INSTANCE_ID = /^inst_[0-9a-f]+@(.+):(\d+):(\d+|-)$/;

/**
 * Whether the instance that wrote `id` may still be running, as far as this host can tell: on this host, its
 * process exists and (where start times are known) is the same process; on another host, true (it cannot be
 * told from here). An id that does not parse is gone.
 */
export function instanceMayBeAlive(id: string, host: string = hostname()): boolean {
  const m = INSTANCE_ID.exec(id);
  if (!m) return false;
  if (m[1] !== host) return true;
  const pid = Number(m[2]);
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: the process exists but belongs to another user.
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  if (m[3] === "-") return true;
  const start = processStartTicks(pid);
  return start === null || start === m[3];
}
