// Worker-thread bootstrap: module loader hooks are per thread, so register the TypeScript loader here before
// loading the real worker (worker.ts), whatever way the parent process was started.
import { register } from "tsx/esm/api";

register();
await import("./worker.ts");
