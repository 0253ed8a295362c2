/**
 * Reads JSON as Python's `json` module writes and reads it. diffusers and transformers save every config with
 * `json.dumps` (allow_nan=True by default), so a float that is infinite or NaN is written as the bare literal
 * `Infinity`, `-Infinity` or `NaN` (e.g. `"lambda_min_clipped": -Infinity` in DPM-Solver scheduler configs), and
 * `json.loads` reads those back. `JSON.parse` refuses them. This reader accepts exactly what `json.loads` accepts:
 * RFC 8259 JSON plus those three literals, which become the JavaScript numbers Infinity, -Infinity and NaN.
 *
 * Why not the `json5` package (which also reads Infinity/-Infinity/NaN): JSON5 is a superset that also takes
 * comments, trailing commas, single-quoted strings, unquoted keys, hex numbers, `+Infinity`, `-NaN`, and so on. A
 * config file that diffusers itself rejects as malformed would then load here and be interpreted, where it must be
 * reported as an invalid checkpoint. No maintained npm package parses exactly Python's dialect, and the grammar is
 * small, so it is written out here.
 *
 * Well-formed plain JSON (nearly every file, including multi-megabyte tokenizer.json files) goes through the native
 * `JSON.parse`; the reader below runs only when that fails, and then either returns the value (the file used the
 * Python literals) or throws a SyntaxError naming the line and column of the first error.
 */

/** Python's `json.loads(text)`: JSON plus the literals `NaN`, `Infinity` and `-Infinity`. Throws SyntaxError. */
export function parsePythonJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // Not plain JSON: the Python literals, or malformed (then the reader reports where).
  }
  try {
    return new PythonJsonReader(text).document();
  } catch (e) {
    if (e instanceof RangeError) throw new SyntaxError("JSON is nested too deeply");
    throw e;
  }
}

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

class PythonJsonReader {
  private readonly s: string;
  private i = 0;
  constructor(text: string) {
    this.s = text;
  }

  document(): unknown {
    this.ws();
    const v = this.value();
    this.ws();
    if (this.i < this.s.length) this.fail("unexpected data after the JSON value");
    return v;
  }

  private fail(what: string, at = this.i): never {
    let line = 1;
    let lineStart = 0;
    for (let k = 0; k < at && k < this.s.length; k++) {
      if (this.s.charCodeAt(k) === 0x0a) {
        line++;
        lineStart = k + 1;
      }
    }
    const found = at < this.s.length ? ` (found ${JSON.stringify(this.s[at])})` : "";
    throw new SyntaxError(`${what}${found} at line ${line} column ${at - lineStart + 1}`);
  }

  /** JSON whitespace only: space, tab, line feed, carriage return. */
  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }

  private literal(word: string, value: unknown): unknown {
    if (!this.s.startsWith(word, this.i)) this.fail("expected a JSON value");
    this.i += word.length;
    return value;
  }

  private value(): unknown {
    const c = this.s[this.i];
    switch (c) {
      case "{":
        return this.object();
      case "[":
        return this.array();
      case '"':
        return this.string();
      case "t":
        return this.literal("true", true);
      case "f":
        return this.literal("false", false);
      case "n":
        return this.literal("null", null);
      case "N":
        return this.literal("NaN", Number.NaN);
      case "I":
        return this.literal("Infinity", Number.POSITIVE_INFINITY);
      case "-":
        if (this.s.startsWith("-Infinity", this.i)) return this.literal("-Infinity", Number.NEGATIVE_INFINITY);
        return this.number();
      case undefined:
        return this.fail("unexpected end of input, expected a JSON value");
      default:
        if (c >= "0" && c <= "9") return this.number();
        return this.fail("expected a JSON value");
    }
  }

  private number(): number {
    NUMBER_RE.lastIndex = this.i;
    const m = NUMBER_RE.exec(this.s);
    if (!m) return this.fail("malformed number");
    this.i += m[0].length;
    return Number(m[0]);
  }

  private string(): string {
    const s = this.s;
    this.i++; // opening quote
    let out = "";
    let run = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail("unterminated string");
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(run, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail("control character in string");
      if (c !== 0x5c) {
        this.i++;
        continue;
      }
      out += s.slice(run, this.i);
      const e = s[this.i + 1];
      if (e === "u") {
        const hex = s.slice(this.i + 2, this.i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("malformed \\u escape");
        out += String.fromCharCode(Number.parseInt(hex, 16));
        this.i += 6;
      } else if (e !== undefined && Object.hasOwn(ESCAPES, e)) {
        out += ESCAPES[e];
        this.i += 2;
      } else {
        this.fail("invalid escape in string");
      }
      run = this.i;
    }
  }

  private array(): unknown[] {
    this.i++; // [
    const out: unknown[] = [];
    this.ws();
    if (this.s[this.i] === "]") {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value());
      this.ws();
      const c = this.s[this.i];
      this.i++;
      if (c === "]") return out;
      if (c !== ",") this.fail("expected ',' or ']' in array", this.i - 1);
    }
  }

  private object(): Record<string, unknown> {
    this.i++; // {
    const out: Record<string, unknown> = {};
    this.ws();
    if (this.s[this.i] === "}") {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail("expected a property name in double quotes");
      const key = this.string();
      this.ws();
      if (this.s[this.i] !== ":") this.fail("expected ':' after a property name");
      this.i++;
      this.ws();
      const v = this.value();
      // As JSON.parse: "__proto__" is an ordinary own property, never the prototype.
      if (key === "__proto__") Object.defineProperty(out, key, { value: v, writable: true, enumerable: true, configurable: true });
      else out[key] = v;
      this.ws();
      const c = this.s[this.i];
      this.i++;
      if (c === "}") return out;
      if (c !== ",") this.fail("expected ',' or '}' in object", this.i - 1);
    }
  }
}
