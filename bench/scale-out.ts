/**
 * `npm run bench -- --only scale-out`: throughput and queue overhead of a scaled-out Easel on this machine. Two API
 * nodes (`easel serve --workers 0`) and two workers (`easel worker`), each a process of its own, share PostgreSQL (a
 * fresh database), Redis (a queue of its own) and one image directory (test/helpers/cluster.ts), over a tiny random
 * SD1.5 checkpoint at 64x64 with 2 steps, so that the engine's share of a job is small and the queue's shows.
 *
 * - throughput: 200 jobs (40 with --quick) sent at once, half to each API node; jobs/s = jobs / (last answer - first
 *   request). Every answer must be a 200 with its own job, every job recorded once, succeeded and charged once.
 * - overhead: 40 more jobs (20 with --quick), two in flight at a time (one per worker, so none waits behind
 *   another): per job, the caller's end-to-end time minus the worker's run time of that job (its row's start to
 *   finish: the engine, encoding, storing the images and settling). What is left is the queue's share: admission,
 *   queueing, a worker picking the job up, and the answer reaching the caller.
 *
 * Needs PostgreSQL and Redis on this machine (as the e2e tests); skipped, saying why, without them.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createKeyAdmin } from "../src/jobs/api-keys.ts";
import { writeTinyCheckpoint } from "../src/models/testing/tiny-checkpoint.ts";
import { clusterUnavailable, startCluster } from "../test/helpers/cluster.ts";

export interface ScaleOutResult {
  status: "ok" | "skipped";
  reason?: string;
  jobs?: number;
  seconds?: number;
  jobsPerSecond?: number;
  /** Queue overhead per job (ms): end-to-end minus the worker's run time, at one job in flight per worker. */
  overheadMs?: { mean: number; p50: number; p95: number; jobs: number };
  /** The worker's run time per job (ms, median) in the overhead phase. */
  runMsMedian?: number;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

export async function benchScaleOut(o: { quick?: boolean; workDir: string; log?: (line: string) => void }): Promise<ScaleOutResult> {
  const log = o.log ?? (() => undefined);
  const why = await clusterUnavailable();
  if (why) return { status: "skipped", reason: why };
  const total = o.quick ? 40 : 200;
  const probes = o.quick ? 20 : 40;
  const modelDir = join(o.workDir, "scale-out-models", "sd15");
  mkdirSync(modelDir, { recursive: true });
  writeTinyCheckpoint(modelDir, { family: "sd15", seed: 11 });
  const cluster = await startCluster({
    models: { sd15: modelDir },
    leaseSeconds: 30,
    label: "bench",
    config: { limits: { maxQueuedPerKey: 10_000 }, queue: { maxQueued: 10_000 } },
  });
  try {
    const { store } = cluster;
    const { key, info } = await createKeyAdmin({ store }).create({ name: "bench", credits: 1_000_000 });
    log("  scale-out: starting 2 API nodes and 2 workers ...");
    const nodes = await Promise.all([cluster.apiNode("api-1"), cluster.apiNode("api-2")]);
    await Promise.all([cluster.worker("worker-1"), cluster.worker("worker-2")]);
    const send = async (i: number, tag: string) => {
      const t0 = performance.now();
      const res = await fetch(`${nodes[i % 2].url}/v1/images/generations`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: "sd15", prompt: `${tag} ${i}`, size: "64x64", steps: 2, n: 1, response_format: "url" }),
      });
      const body = await res.text();
      if (res.status !== 200) throw new Error(`job ${tag} ${i}: ${res.status} ${body}`);
      return { jobId: res.headers.get("x-easel-job-id")!, ms: performance.now() - t0 };
    };
    // Warm-up: each worker loads the model once.
    await Promise.all([send(0, "warm"), send(1, "warm"), send(2, "warm"), send(3, "warm")]);

    log(`  scale-out: ${total} jobs at once through 2 API nodes ...`);
    const t0 = performance.now();
    const answers = await Promise.all(Array.from({ length: total }, (_, i) => send(i, "throughput")));
    const seconds = (performance.now() - t0) / 1000;

    log(`  scale-out: ${probes} jobs, one in flight per worker ...`);
    const probed: { jobId: string; ms: number }[] = [];
    for (let i = 0; i < probes; i += 2) probed.push(...(await Promise.all([send(i, "overhead"), send(i + 1, "overhead")])));

    // None lost, none duplicated, each charged once.
    const ids = new Set([...answers, ...probed].map((a) => a.jobId));
    if (ids.size !== total + probes) throw new Error(`${total + probes} answers named ${ids.size} distinct jobs`);
    const rows = (await store.listJobs({ keyId: info.id, limit: 10_000 })).filter((j) => ids.has(j.id));
    if (rows.length !== ids.size) throw new Error(`${ids.size} jobs answered, ${rows.length} recorded`);
    const ledger = await store.ledger(info.id);
    for (const j of rows) {
      const charges = ledger.filter((e) => e.jobId === j.id && e.kind === "charge").length;
      if (j.status !== "succeeded" || charges !== 1) throw new Error(`${j.id}: ${j.status}, ${charges} charges`);
    }
    const byId = new Map(rows.map((j) => [j.id, j]));
    const runMs = probed.map((p) => byId.get(p.jobId)!.finishedAt! - byId.get(p.jobId)!.startedAt!);
    const overhead = probed.map((p, i) => p.ms - runMs[i]);
    return {
      status: "ok",
      jobs: total,
      seconds,
      jobsPerSecond: total / seconds,
      overheadMs: { mean: overhead.reduce((a, b) => a + b, 0) / overhead.length, p50: quantile(overhead, 0.5), p95: quantile(overhead, 0.95), jobs: probes },
      runMsMedian: quantile(runMs, 0.5),
    };
  } finally {
    await cluster.close();
  }
}

export function printScaleOut(r: ScaleOutResult): void {
  if (r.status !== "ok") {
    console.log(`scale-out: skipped (${r.reason})`);
    return;
  }
  const o = r.overheadMs!;
  console.log(
    `scale-out (2 API nodes, 2 workers, PostgreSQL + Redis, tiny SD1.5 64x64, 2 steps): ${r.jobs} jobs in ${r.seconds!.toFixed(1)} s = ` +
      `${r.jobsPerSecond!.toFixed(1)} jobs/s, none lost or duplicated; queue overhead per job (end-to-end minus the worker's run time, ` +
      `${o.jobs} jobs one in flight per worker): mean ${o.mean.toFixed(0)} ms, p50 ${o.p50.toFixed(0)} ms, p95 ${o.p95.toFixed(0)} ms ` +
      `(worker run time median ${r.runMsMedian!.toFixed(0)} ms)`,
  );
}
