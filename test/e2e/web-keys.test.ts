/**
 * The web playground against a server that requires API keys: the page asks for a key, shows the server's words
 * for a wrong one, keeps the right one in local storage, shows the credits left, and its Cancel button cancels the
 * job on the server (the job ends cancelled, its reservation released, nothing charged).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { launchBrowser, pageReady, screenshot, skipReason, startWebServer, type WebServer, watchPage } from "./web-harness.ts";

describe("web page (a server with keys)", { skip: skipReason, concurrency: false }, () => {
  let server: WebServer;
  let browser: Browser;
  let page: Page;
  let problems: string[] = [];

  before(async () => {
    server = await startWebServer({ credits: 50 });
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 390, height: 844 }, colorScheme: "dark" });
    // 401: the page's first look without a key, and the wrong key tried on purpose.
    problems = watchPage(page, [401]);
    await page.goto(server.base);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test("asks for the key, shows the server's words for a wrong one, keeps the right one; credits shown", async () => {
    const keyInput = page.getByTestId("api-key");
    await keyInput.waitFor();
    assert.equal(await page.locator("#main").isHidden(), true, "nothing but the key prompt without a key");
    const unauthenticated = await fetch(`${server.base}/v1/models`);
    assert.equal(unauthenticated.status, 401);
    const missing = ((await unauthenticated.json()) as { error: { message: string } }).error.message;
    assert.equal(await page.locator("#key-reason").textContent(), missing);
    await screenshot(page, "keys-1-prompt");

    await keyInput.fill("esk_not_a_real_key");
    await keyInput.press("Enter");
    const wrong = await fetch(`${server.base}/v1/models`, { headers: { authorization: "Bearer esk_not_a_real_key" } });
    const wrongMessage = ((await wrong.json()) as { error: { message: string } }).error.message;
    await page.locator("#key-reason", { hasText: wrongMessage }).waitFor();
    assert.notEqual(wrongMessage, missing);

    await keyInput.fill(String(server.key));
    await page.getByTestId("api-key-save").click();
    await pageReady(page);
    assert.equal(await page.evaluate("localStorage.getItem('easel.apiKey')"), server.key);
    const credits = page.getByTestId("credits");
    await credits.waitFor();
    assert.equal(await credits.textContent(), `Credits left: ${await server.balance()}`);

    await page.reload();
    await pageReady(page);
    assert.equal(await keyInput.isHidden(), true, "the kept key is used without asking again");
    await screenshot(page, "keys-2-ready-phone-dark");
  });

  test("Cancel mid-run: the job ends cancelled on the server, its credits released", async () => {
    const before = await server.balance();
    await page.getByTestId("prompt").fill("a blue triangle on an orange background");
    // Euler over 1000 steps: long enough to cancel after the first steps on any machine.
    await page.getByTestId("steps").fill("1000");
    await page.getByTestId("sampler").selectOption("euler");
    await page.getByTestId("generate").click();
    await page.getByTestId("status").filter({ hasText: /^Step ([3-9]|\d\d+) of 1000$/ }).waitFor({ timeout: 30_000 });
    await page.getByTestId("cancel").click();
    await page.getByTestId("status").filter({ hasText: /^Cancelled: job \S+ is cancelled\.$/ }).waitFor({ timeout: 15_000 });
    await screenshot(page, "keys-3-cancelled");

    const res = await fetch(`${server.base}/v1/jobs?limit=1`, { headers: { authorization: `Bearer ${server.key}` } });
    const [job] = ((await res.json()) as { data: { id: string; status: string; creditsCharged: number; params: Record<string, unknown> }[] }).data;
    assert.equal(job.params.prompt, "a blue triangle on an orange background");
    assert.equal(job.status, "cancelled");
    assert.equal(job.creditsCharged, 0);
    assert.equal(await server.balance(), before, "the reservation was released");
    assert.equal(await page.getByTestId("result-image").count(), 0);
    const item = page.locator(`[data-testid=history-item][data-job-id="${job.id}"]`);
    assert.match(String(await item.getByTestId("history-status").textContent()), /^cancelled/);
    assert.equal(await page.getByTestId("generate").isEnabled(), true, "ready for the next one");
  });

  test("history pages: twelve jobs at a time, Older jobs for the next page, newest first", async () => {
    const made: string[] = [];
    for (let i = 0; i < 13; i++) {
      const res = await fetch(`${server.base}/v1/images/generations`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${server.key}` },
        body: JSON.stringify({ model: "sd15", prompt: `page ${i}`, size: "64x64", steps: 1, response_format: "url" }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      made.push(String(res.headers.get("x-easel-job-id")));
    }
    await page.reload();
    await pageReady(page);
    const items = page.getByTestId("history-item");
    await items.nth(11).waitFor();
    assert.equal(await items.count(), 12);
    const ids = () => items.evaluateAll((els) => els.map((e) => e.getAttribute("data-job-id")));
    assert.deepEqual((await ids()).slice(0, 12), made.slice(1).reverse(), "newest first");
    const more = page.locator("#history-more");
    assert.equal(await more.isVisible(), true);
    await more.click();
    await items.nth(12).waitFor();
    const all = await ids();
    assert.equal(all[12], made[0]);
    assert.equal(new Set(all).size, all.length, "no job twice");
    assert.equal(all.length, 14, "13 made here and the cancelled one");
    assert.equal(await more.isHidden(), true, "no older jobs left");
    await screenshot(page, "keys-4-history-pages");
  });

  test("no script errors and no failed requests but the refused ones", () => {
    assert.deepEqual(problems, []);
  });
});
