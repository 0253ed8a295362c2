/**
 * The web playground in Debian's Chromium against a real server in open mode (loopback, no keys) with the built-in
 * model and the micro checkpoints: generating (progress, preview frames, the result and its seed, the same bytes
 * the server stored), keyboard-only use, the server's own error wording, history after a reload with settings
 * reuse and delete, img2img from a file (progress polled), and "Copy as request" whose OpenAI curl, run as written, makes the same
 * image.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import sharp from "sharp";
import { launchBrowser, pageReady, screenshot, skipReason, startWebServer, type WebServer, watchPage } from "./web-harness.ts";

interface JobJson {
  id: string;
  status: string;
  dialect: string;
  model: string;
  seed: number | null;
  params: Record<string, unknown>;
  images: { url: string | null; seed: number }[];
}

/** Records what the page showed while it ran: preview frames (src changes) and progress values. */
const RECORDER = `
  window.__seen = { previews: 0, progress: [] };
  document.addEventListener("DOMContentLoaded", () => {
    const preview = document.querySelector("[data-testid=preview-image]");
    new MutationObserver(() => { if (preview.getAttribute("src")) window.__seen.previews++; })
      .observe(preview, { attributes: true, attributeFilter: ["src"] });
    const progress = document.querySelector("[data-testid=progress]");
    new MutationObserver(() => { if (progress.hasAttribute("value")) window.__seen.progress.push(progress.value + "/" + progress.max); })
      .observe(progress, { attributes: true, attributeFilter: ["value", "max"] });
  });
`;

describe("web page (open mode)", { skip: skipReason, concurrency: false }, () => {
  let server: WebServer;
  let browser: Browser;
  let page: Page;
  let problems: string[] = [];
  /** The built-in model's defaults as the server states them (its model_index.json sets steps and guidance). */
  let shapes: { steps: number; guidanceScale: number };

  const jobs = async (): Promise<JobJson[]> => ((await (await fetch(`${server.base}/v1/jobs?limit=20`)).json()) as { data: JobJson[] }).data;
  const resultBytes = async (): Promise<Buffer> => {
    const src = await page.getByTestId("result-image").first().getAttribute("src");
    return Buffer.from(String(src).replace(/^data:[^,]*,/, ""), "base64");
  };

  before(async () => {
    server = await startWebServer();
    const models = (await (await fetch(`${server.base}/v1/models`)).json()) as { data: { id: string; defaults: { steps: number; guidanceScale: number } }[] };
    shapes = models.data.find((m) => m.id === "easel-shapes")!.defaults;
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    // 400: the invalid size asked for on purpose.
    problems = watchPage(page, [400]);
    await page.addInitScript(RECORDER);
    await page.goto(server.base);
    await pageReady(page);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test("generate: progress per step and preview frames, then the result with its seed, as the server stored it", async () => {
    assert.equal(await page.getByTestId("model").inputValue(), "easel-shapes", "the first model, selected");
    assert.equal(await page.getByTestId("width").inputValue(), "128", "the model's default size");
    assert.equal(await page.getByTestId("steps").inputValue(), String(shapes.steps), "the model's default steps");
    await page.getByTestId("prompt").fill("a small red circle at the top left on a blue background");
    await page.getByTestId("steps").fill("12");
    await page.getByTestId("seed-random").uncheck();
    await page.getByTestId("seed").fill("1234");
    await page.getByTestId("generate").click();
    await page.getByTestId("result-image").first().waitFor({ timeout: 30_000 });
    await screenshot(page, "1-generated");

    const seen = (await page.evaluate("window.__seen")) as { previews: number; progress: string[] };
    assert.ok(seen.previews >= 1, `preview frames shown: ${seen.previews}`);
    assert.ok(seen.progress.includes("12/12") && seen.progress.some((p) => /^[1-9]\/12$/.test(p)), `progress: ${seen.progress.join(" ")}`);
    assert.equal(await page.getByTestId("result-seed").first().textContent(), "Seed 1234");
    assert.match(String(await page.getByTestId("status").textContent()), /seed 1234/);
    assert.equal(await page.getByTestId("preview-image").isHidden(), true, "the preview gives way to the result");

    const [job] = await jobs();
    assert.deepEqual([job.status, job.seed, job.model, job.params.steps], ["succeeded", 1234, "easel-shapes", 12]);
    assert.ok(job.images[0].url, "the page's Idempotency-Key has the server keep the image for the history");
    const stored = Buffer.from(await (await fetch(String(job.images[0].url))).arrayBuffer());
    assert.ok(stored.equals(await resultBytes()), "the page shows the bytes the server stored");
    const meta = await sharp(stored).metadata();
    assert.deepEqual([meta.width, meta.height], [128, 128]);
    const download = page.locator("figure a[download]").first();
    assert.equal(await download.getAttribute("download"), "easel-1234-1.png");
  });

  test("keyboard only: Tab to the prompt, type, Tab to Generate, Enter; focus is visible", async () => {
    await page.goto(server.base);
    await pageReady(page);
    const focused = () => page.evaluate("document.activeElement?.dataset?.testid ?? document.activeElement?.id ?? ''") as Promise<string>;
    const tabTo = async (testid: string, most: number) => {
      for (let i = 0; i < most && (await focused()) !== testid; i++) await page.keyboard.press("Tab");
      assert.equal(await focused(), testid);
    };
    await tabTo("prompt", 4);
    await page.keyboard.type("a green square in the centre on a white background");
    await tabTo("steps", 10);
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.type("4");
    await tabTo("generate", 20);
    assert.equal(await focused(), "generate");
    const outline = (await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")) as string;
    assert.notEqual(outline, "none", "keyboard focus is drawn");
    await screenshot(page, "2-keyboard-focus");
    await page.keyboard.press("Enter");
    await page.getByTestId("result-image").first().waitFor({ timeout: 30_000 });
    const [job] = await jobs();
    assert.equal(job.params.prompt, "a green square in the centre on a white background");
    assert.equal(job.params.steps, 4);
  });

  test("an invalid size shows the server's error as the server words it, and nothing is made", async () => {
    const before = (await jobs()).length;
    await page.getByTestId("width").fill("100");
    await page.getByTestId("generate").click();
    const error = page.getByTestId("error");
    await error.waitFor();
    const direct = await fetch(`${server.base}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "easel-shapes", prompt: "x", size: "100x128", stream: true }),
    });
    assert.equal(direct.status, 400);
    const message = ((await direct.json()) as { error: { message: string } }).error.message;
    assert.equal(await error.textContent(), message);
    await screenshot(page, "3-server-error");
    assert.equal((await jobs()).length, before, "refused before admission");
    await page.getByTestId("width").fill("128");
  });

  test("history after a reload: the jobs with thumbnails and settings; reuse fills the form; delete removes the job", async () => {
    await page.reload();
    await pageReady(page);
    const items = page.getByTestId("history-item");
    await items.first().waitFor();
    assert.equal(await items.count(), 2);
    const first = (await jobs())[1];
    const item = page.locator(`[data-testid=history-item][data-job-id="${first.id}"]`);
    assert.equal(
      /easel-shapes · 128×128 · 12 steps · guidance (\S+) · seed 1234/.exec(String(await item.getByTestId("history-params").textContent()))?.[1],
      String(shapes.guidanceScale),
    );
    assert.equal(await item.locator("img").count(), 1, "a thumbnail");
    await screenshot(page, "4-history");

    await item.getByTestId("history-reuse").click();
    assert.equal(await page.getByTestId("prompt").inputValue(), "a small red circle at the top left on a blue background");
    assert.equal(await page.getByTestId("steps").inputValue(), "12");
    assert.equal(await page.getByTestId("seed").inputValue(), "1234");
    assert.equal(await page.getByTestId("seed-random").isChecked(), false);

    await item.getByTestId("history-delete").click();
    await item.waitFor({ state: "detached" });
    assert.equal((await fetch(`${server.base}/v1/jobs/${first.id}`)).status, 404);
    assert.equal(await items.count(), 1);
  });

  test("img2img from a file, through the A1111 route, with the chosen strength; its progress and preview frame are shown", async () => {
    await page.getByTestId("model").selectOption("easel-shapes");
    await page.evaluate("window.__seen = { previews: 0, progress: [] }");
    const png = await sharp({ create: { width: 128, height: 128, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toBuffer();
    await page.getByTestId("init-image").setInputFiles({ name: "start.png", mimeType: "image/png", buffer: png });
    await page.locator("#init-preview").waitFor();
    await page.getByTestId("prompt").fill("a white circle on a red background");
    // 40 of the 80 steps run (strength 0.5): long enough for the page's progress polls to see some.
    await page.getByTestId("steps").fill("80");
    await page.getByTestId("strength").fill("0.5");
    await page.getByTestId("generate").click();
    await page.getByTestId("result-image").first().waitFor({ timeout: 30_000 });
    await screenshot(page, "5-img2img");
    const seen = (await page.evaluate("window.__seen")) as { previews: number; progress: string[] };
    assert.ok(seen.progress.some((p) => /^\d+\/\d+$/.test(p) && !p.startsWith("0/")), `progress: ${seen.progress.join(" ")}`);
    const [job] = await jobs();
    assert.deepEqual([job.status, job.dialect, job.model, job.params.strength], ["succeeded", "a1111", "easel-shapes", 0.5]);
    assert.ok(job.params.initImage, "the starting image went with the request");
    assert.ok(job.images[0].url, "kept for the history");
    const seed = Number((await page.getByTestId("result-seed").first().textContent())?.replace("Seed ", ""));
    assert.equal(seed, job.images[0].seed);
    await page.locator("#init-clear").click();
  });

  test("Copy as request: the OpenAI curl, run as written, makes the same image; dialects that cannot express it say why", async () => {
    await page.getByTestId("model").selectOption("easel-shapes");
    await page.getByTestId("prompt").fill("a yellow star on a black background, it's big");
    await page.getByTestId("steps").fill("6");
    await page.getByTestId("seed-random").uncheck();
    await page.getByTestId("seed").fill("77");
    await page.getByTestId("generate").click();
    await page.getByTestId("result-image").first().waitFor({ timeout: 30_000 });

    await page.locator("#copy summary").click();
    await page.getByTestId("copy-kind").selectOption("openai");
    const curl = String(await page.getByTestId("copy-text").textContent());
    await screenshot(page, "6-copy-as-request");
    const url = /^curl -sS (\S+)/.exec(curl)?.[1];
    const quoted = /-d '((?:[^']|'\\'')*)'$/.exec(curl)?.[1];
    assert.ok(url && quoted, curl);
    assert.match(curl, /-H "Authorization: Bearer \$EASEL_API_KEY"/);
    const body = JSON.parse(quoted.replace(/'\\''/g, "'")) as Record<string, unknown>;
    assert.deepEqual(body, {
      model: "easel-shapes",
      prompt: "a yellow star on a black background, it's big",
      n: 1,
      size: "128x128",
      steps: 6,
      guidance_scale: shapes.guidanceScale,
      seed: 77,
      response_format: "url",
    });
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.equal(res.status, 200, await res.clone().text());
    const out = (await res.json()) as { data: { url: string; seed: number }[] };
    assert.equal(out.data[0].seed, 77);
    const bytes = Buffer.from(await (await fetch(out.data[0].url)).arrayBuffer());
    assert.ok(bytes.equals(await resultBytes()), "the same settings make the same picture");

    await page.getByTestId("copy-kind").selectOption("openai-sdk");
    const sdk = String(await page.getByTestId("copy-text").textContent());
    assert.match(sdk, /new OpenAI\(\{ baseURL: "http:\/\/127\.0\.0\.1:\d+\/v1"/);
    assert.match(sdk, /client\.images\.generate\(\{[\s\S]*"seed": 77/);
    await page.getByTestId("copy-kind").selectOption("segmind");
    assert.match(String(await page.getByTestId("copy-text").textContent()), /serves only playground-v2\.5, not easel-shapes/);

    await page.getByTestId("model").selectOption("playground-v2.5");
    const samplers = await page.getByTestId("sampler").locator("option").evaluateAll((os) => os.map((o) => o.getAttribute("value")));
    assert.equal(samplers[0], "", "the model's own sampler first");
    assert.ok(samplers.length > 1 && samplers.slice(1).every((v) => v?.startsWith("edm_")), `an EDM model's samplers: ${samplers.join(", ")}`);
    assert.equal(await page.getByTestId("width").inputValue(), "64", "the model's defaults follow the model");
    await page.getByTestId("size").selectOption("64x64");
    await page.getByTestId("copy-kind").selectOption("playground");
    const pg = String(await page.getByTestId("copy-text").textContent());
    assert.match(pg, /^curl -sS http:\/\/127\.0\.0\.1:\d+\/api\/models\/external\/v1/);
    assert.match(pg, /"filter_model":"Playground_v2\.5"/);
  });

  test("no script errors and no failed requests but the refused one", () => {
    assert.deepEqual(problems, []);
  });
});
