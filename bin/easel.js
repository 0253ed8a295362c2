#!/usr/bin/env node
// Entry point for `npx easel` and `npm start`: registers the TypeScript loader, then runs the CLI.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
await main(process.argv);
