/** The img2img starting image: dropped on the zone, pasted anywhere on the page, or chosen with the file picker. */
import { $ } from "./dom.ts";

export class StartingImage {
  /** The image as a data: URL; null when there is none. */
  value: string | null = null;
  private readonly drop = $<HTMLButtonElement>("drop");
  private readonly hint = $("drop-hint");
  private readonly file = $<HTMLInputElement>("init-file");
  private readonly preview = $<HTMLImageElement>("init-preview");
  private readonly clear = $<HTMLButtonElement>("init-clear");
  private readonly strength = $<HTMLInputElement>("strength");

  constructor(
    private readonly onChange: () => void,
    private readonly showError: (e: unknown) => void,
  ) {
    // A button: Enter and Space open the file chooser too.
    this.drop.addEventListener("click", () => this.allowed() && this.file.click());
    this.drop.addEventListener("dragover", (ev) => {
      ev.preventDefault();
      this.drop.classList.add("over");
    });
    this.drop.addEventListener("dragleave", () => this.drop.classList.remove("over"));
    this.drop.addEventListener("drop", (ev) => {
      ev.preventDefault();
      this.drop.classList.remove("over");
      if (this.allowed()) this.read(ev.dataTransfer?.files[0]);
    });
    this.file.addEventListener("change", () => this.read(this.file.files?.[0]));
    this.clear.addEventListener("click", () => {
      this.set(null);
      this.file.value = "";
      this.drop.focus();
    });
    document.addEventListener("paste", (ev) => {
      const file = [...(ev.clipboardData?.files ?? [])].find((f) => f.type.startsWith("image/"));
      if (file && this.allowed()) {
        ev.preventDefault();
        this.read(file);
      }
    });
  }

  private allowed(): boolean {
    return this.drop.getAttribute("aria-disabled") !== "true";
  }

  /** Turns img2img off, saying why (and drops the image), or on again (`why` undefined). */
  setUnavailable(why: string | undefined): void {
    this.drop.setAttribute("aria-disabled", why ? "true" : "false");
    this.strength.disabled = Boolean(why);
    this.hint.textContent = why ?? "Drop or paste an image here, or press Enter to choose a file.";
    if (why && this.value) this.set(null);
  }

  set(dataUrl: string | null): void {
    this.value = dataUrl;
    this.preview.hidden = dataUrl === null;
    this.clear.hidden = dataUrl === null;
    if (dataUrl) this.preview.src = dataUrl;
    else this.preview.removeAttribute("src");
    this.onChange();
  }

  private read(file: File | null | undefined): void {
    if (!file || !/^image\/(png|jpeg|webp)$/.test(file.type)) {
      this.showError(new Error("A starting image must be a PNG, JPEG or WebP file."));
      return;
    }
    const reader = new FileReader();
    reader.onload = () => this.set(String(reader.result));
    reader.readAsDataURL(file);
  }
}
