/** "Copy as request": a picker of the APIs, the chosen one's request (or why it cannot be written), and Copy. */
import type { Model } from "./api.ts";
import { $ } from "./dom.ts";
import { type RequestText, requestTexts, type Settings } from "./requests.ts";

export class CopyAsRequest {
  private texts: RequestText[] = [];
  private readonly kind = $<HTMLSelectElement>("copy-kind");
  private readonly text = $("copy-text");
  private readonly button = $<HTMLButtonElement>("copy-button");

  constructor(private readonly say: (status: string) => void) {
    this.kind.addEventListener("change", () => this.show());
    this.button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(this.text.textContent ?? "");
        this.say("Copied. Set EASEL_API_KEY in your shell first.");
      } catch {
        // Clipboard access needs a secure context or permission: select the text so the person can copy it.
        getSelection()?.selectAllChildren(this.text);
        this.say("Selected: press Ctrl+C (⌘C) to copy.");
      }
    });
  }

  update(s: Settings, m: Model): void {
    this.texts = requestTexts(s, m, location.origin);
    const chosen = this.kind.value || "openai";
    this.kind.replaceChildren(...this.texts.map((c) => new Option("text" in c ? c.label : `${c.label} (not possible)`, c.id)));
    this.kind.value = chosen;
    this.show();
  }

  private show(): void {
    const c = this.texts.find((x) => x.id === this.kind.value) ?? this.texts[0];
    if (!c) return;
    this.text.textContent = "text" in c ? c.text : c.unavailable;
    this.button.disabled = !("text" in c);
  }
}
