/**
 * Reading the multipart/form-data bodies of `POST /v1/images/edits` and `/v1/images/variations` with
 * @fastify/multipart (registered on the OpenAI dialect's routes). Limits apply while the body streams in, before
 * any image is looked at: each file at most server.imageBodyLimitBytes, a fixed number of files, fields and parts.
 * The `openai` SDK sends numbers and booleans as their string spelling and arrays as repeated `name[]` parts.
 */
import type {} from "@fastify/multipart";
import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { EaselError, invalidInput, isEaselError } from "../../core/errors.ts";

export interface UploadedFile {
  field: string;
  filename: string;
  bytes: Buffer;
}

export interface Form {
  fields: Record<string, string>;
  files: UploadedFile[];
}

export interface FormLimits {
  fileBytes: number;
  /** Field names that may carry files; a file under another name is refused. */
  fileFields: readonly string[];
  /** OpenAI's edits take up to 16 images, plus the mask. */
  maxFiles: number;
}

const MAX_FIELDS = 64;
const MAX_FIELD_BYTES = 256 * 1024;

/** The form's fields and files; a body that is not multipart, or breaks a limit, is refused with the field it concerns. */
export async function readForm(req: FastifyRequest, limits: FormLimits): Promise<Form> {
  if (!req.isMultipart()) {
    throw new EaselError("E_INPUT_INVALID", "This endpoint takes multipart/form-data: the image file(s) as `image` (or `image[]`) and the other fields beside them.", {
      details: { reason: "invalid_type" },
    });
  }
  // A declared length past what the limits below could ever accept is refused before the body is read.
  const declared = Number(req.headers["content-length"]);
  const most = limits.maxFiles * limits.fileBytes + MAX_FIELDS * MAX_FIELD_BYTES;
  if (Number.isFinite(declared) && declared > most) {
    throw new EaselError("E_PAYLOAD_TOO_LARGE", `The request body (${declared} bytes) is larger than this endpoint accepts (${most} bytes).`);
  }
  const fields: Record<string, string> = {};
  const files: UploadedFile[] = [];
  let current = "";
  try {
    const parts = req.parts({
      limits: { fileSize: limits.fileBytes, files: limits.maxFiles, fields: MAX_FIELDS, fieldSize: MAX_FIELD_BYTES, parts: MAX_FIELDS + limits.maxFiles },
    });
    for await (const part of parts) {
      current = part.fieldname;
      if (part.type === "file") {
        if (!limits.fileFields.includes(part.fieldname)) {
          part.file.resume();
          throw invalidInput(part.fieldname, `'${part.fieldname}' is not a file field (files go in ${limits.fileFields.map((f) => `'${f}'`).join(", ")})`, {
            reason: "invalid_type",
          });
        }
        files.push({ field: part.fieldname, filename: part.filename, bytes: await part.toBuffer() });
        continue;
      }
      if (limits.fileFields.includes(part.fieldname)) {
        throw invalidInput(part.fieldname, `'${part.fieldname}' must be an uploaded file (multipart part with a filename), not a text field`, {
          reason: "invalid_type",
        });
      }
      if (part.valueTruncated) {
        throw invalidInput(part.fieldname, `'${part.fieldname}' is longer than ${MAX_FIELD_BYTES} bytes`);
      }
      if (Object.hasOwn(fields, part.fieldname)) throw invalidInput(part.fieldname, `'${part.fieldname}' is given more than once`);
      fields[part.fieldname] = String(part.value);
    }
  } catch (e) {
    throw formError(e, current, limits);
  }
  return { fields, files };
}

/** @fastify/multipart's and busboy's errors as Easel's, naming the part being read. */
function formError(e: unknown, field: string, limits: FormLimits): EaselError {
  if (isEaselError(e)) return e;
  const code = (e as { code?: string }).code;
  switch (code) {
    case "FST_REQ_FILE_TOO_LARGE":
      return new EaselError("E_PAYLOAD_TOO_LARGE", `The file '${field}' is larger than ${limits.fileBytes} bytes, the most this server accepts.`, {
        param: field,
      });
    case "FST_FILES_LIMIT":
      return invalidInput(field, `At most ${limits.maxFiles} files are accepted in one request.`);
    case "FST_FIELDS_LIMIT":
    case "FST_PARTS_LIMIT":
      return invalidInput(field, `The form has too many fields (at most ${MAX_FIELDS}).`);
    case "FST_PROTO_VIOLATION":
      return invalidInput(field, `'${field}' is not an allowed field name.`);
    default:
      return new EaselError("E_INPUT_INVALID", `The multipart body could not be read: ${(e as Error)?.message ?? "malformed"}.`, {
        details: { reason: "invalid_value" },
      });
  }
}

/** Zod issues of a form's fields in the error shape of schema validation elsewhere (unknown, missing, invalid). */
export function parseFields<T extends z.ZodType>(schema: T, fields: Record<string, string>): z.output<T> {
  const r = schema.safeParse(fields);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0];
    return throwInput(key, `Unknown parameter: '${key}'.`, "unknown_parameter");
  }
  const field = issue.path.map(String).join(".");
  if (fields[field] === undefined) return throwInput(field, `Missing required parameter: '${field}'.`, "missing_required_parameter");
  return throwInput(field, `Invalid value for '${field}': ${issue.message}.`, "invalid_value");
}

function throwInput(param: string, message: string, reason: string): never {
  throw new EaselError("E_INPUT_INVALID", message, { param, details: { reason } });
}

const INTEGER = /^\s*[-+]?\d+\s*$/;
const NUMBER = /^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$/;

/** A form field holding an integer ("3"); any other spelling fails `inner` with its own message. */
export function formInt<T extends z.ZodType>(inner: T) {
  return z.preprocess((v) => (typeof v === "string" && INTEGER.test(v) ? Number(v) : v), inner);
}

/** A form field holding a number ("7.5"). */
export function formNumber<T extends z.ZodType>(inner: T) {
  return z.preprocess((v) => (typeof v === "string" && NUMBER.test(v) ? Number(v) : v), inner);
}

/** A form field holding "true" or "false". */
export function formBool<T extends z.ZodType>(inner: T) {
  return z.preprocess((v) => (v === "true" ? true : v === "false" ? false : v), inner);
}
