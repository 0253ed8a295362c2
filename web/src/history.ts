/** The key's past jobs, newest first, a page at a time: thumbnails, settings, seed, model, time; reuse and delete. */
import type { Api, Job } from "./api.ts";
import { $, duration, h } from "./dom.ts";
import type { Settings } from "./requests.ts";

export interface HistoryOptions {
  api: () => Api;
  /** Fill the form with a job's settings. */
  reuse: (s: Partial<Settings>) => void;
  showError: (e: unknown) => void;
  /** The key's credits left, as the server's x-remaining-credits header says ("Infinity": no limit). */
  onCredits: (credits: string | null) => void;
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** A job's recorded request (canonical fields) as form settings. */
export function settingsOf(job: Job): Partial<Settings> {
  const p = job.params;
  return {
    prompt: str(p.prompt) ?? "",
    negativePrompt: str(p.negativePrompt) ?? "",
    model: job.model,
    width: num(p.width),
    height: num(p.height),
    steps: num(p.steps),
    guidance: num(p.guidanceScale),
    scheduler: str(p.scheduler) ?? "",
    seed: job.seed ?? num(p.seed) ?? null,
    n: num(p.n),
    strength: num(p.strength),
  };
}

function describe(job: Job): string {
  const p = job.params;
  const parts = [
    job.model,
    p.width && p.height ? `${p.width}×${p.height}` : undefined,
    p.steps !== undefined ? `${p.steps} steps` : undefined,
    p.guidanceScale !== undefined ? `guidance ${p.guidanceScale}` : undefined,
    p.scheduler ? String(p.scheduler) : undefined,
    job.seed !== null ? `seed ${job.seed}` : undefined,
    p.initImage ? `img2img ${p.strength ?? ""}`.trim() : undefined,
  ];
  return parts.filter(Boolean).join(" · ");
}

export class History {
  private lastId: string | null = null;
  private readonly list = $<HTMLUListElement>("history-list");
  private readonly more = $<HTMLButtonElement>("history-more");
  private readonly empty = $("history-empty");

  constructor(private readonly opts: HistoryOptions) {
    this.more.addEventListener("click", () => void this.load(false));
  }

  /** The first page again (reset), or the next one. */
  async load(reset = true): Promise<Job[]> {
    try {
      const page = await this.opts.api().jobs(reset ? undefined : (this.lastId ?? undefined));
      if (reset) this.list.replaceChildren();
      for (const job of page.data) this.list.append(this.item(job));
      this.lastId = page.lastId ?? this.lastId;
      this.more.hidden = !page.hasMore;
      this.empty.hidden = this.list.childElementCount > 0;
      this.opts.onCredits(page.credits);
      return page.data;
    } catch (e) {
      this.opts.showError(e);
      return [];
    }
  }

  private item(job: Job): HTMLLIElement {
    const prompt = str(job.params.prompt) ?? "";
    const thumbs = h("div", { class: "thumbs" });
    for (const img of job.images) {
      if (img.url) thumbs.append(h("img", { src: img.url, alt: `Seed ${img.seed}: ${prompt}`, loading: "lazy", width: String(img.width), height: String(img.height) }));
    }
    const when = new Date(job.createdAt).toLocaleString();
    const took = job.timings.runMs !== null ? `took ${duration(job.timings.runMs)}` : "";
    const status = job.status === "succeeded" ? "" : job.error ? `${job.status}: ${job.error.message}` : job.status;
    const reuse = h("button", { type: "button", class: "quiet", "data-testid": "history-reuse" }, "Use these settings again");
    const del = h("button", { type: "button", class: "danger", "data-testid": "history-delete", "aria-label": `Delete the job “${prompt}”` }, "Delete");
    const li = h(
      "li",
      { "data-testid": "history-item", "data-job-id": job.id, "data-status": job.status },
      thumbs.childElementCount > 0 ? thumbs : null,
      h("span", { class: "prompt" }, prompt),
      h("span", { class: "meta", "data-testid": "history-params" }, describe(job)),
      h("span", { class: "meta" }, [when, took].filter(Boolean).join(" · ")),
      status ? h("span", { class: `meta status-${job.status}`, "data-testid": "history-status" }, status) : null,
      h("div", { class: "row" }, reuse, del),
    );
    reuse.addEventListener("click", () => this.opts.reuse(settingsOf(job)));
    del.addEventListener("click", async () => {
      del.disabled = true;
      try {
        await this.opts.api().deleteJob(job.id);
        li.remove();
        this.empty.hidden = this.list.childElementCount > 0;
      } catch (e) {
        del.disabled = false;
        this.opts.showError(e);
      }
    });
    return li;
  }
}
