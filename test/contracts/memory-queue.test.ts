import { createMemoryQueue } from "../../src/queue/memory.ts";
import { runQueueContract } from "./queue.contract.ts";

runQueueContract("memory queue", async (opts) => createMemoryQueue(opts));
