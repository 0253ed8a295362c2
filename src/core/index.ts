export * from "./errors.ts";
export * from "./image-service.ts";
export * from "./types.ts";
