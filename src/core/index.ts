export * from "./errors.ts";
export * from "./image-service.ts";
export * from "./limits.ts";
export * from "./types.ts";
