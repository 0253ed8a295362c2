/**
 * One component's onnxruntime session under a memory plan (./memory.ts): a resident slot opens once and keeps its
 * session; an on-demand slot opens for its step of a request and `done()` releases it again, so its weights are
 * returned before the next step opens its own.
 */
import type { ModelSession } from "../../runtime/session.ts";
import type { Residency } from "./memory.ts";

export interface SessionSlot {
  readonly mode: Residency;
  /** The open session, opening it when needed (a failed open is retried on the next call). */
  get(): Promise<ModelSession>;
  /** End of this component's step: releases an on-demand session, keeps a resident one. */
  done(): Promise<void>;
  /** Releases the session whatever the mode (pipeline release). */
  release(): Promise<void>;
}

export function sessionSlot(open: () => Promise<ModelSession>, mode: Residency): SessionSlot {
  let current: Promise<ModelSession> | undefined;
  const release = async () => {
    const p = current;
    current = undefined;
    if (!p) return;
    let s: ModelSession;
    try {
      s = await p;
    } catch {
      return; // never opened: nothing to release
    }
    await s.release();
  };
  return {
    mode,
    get() {
      if (!current) {
        const p = open();
        current = p;
        p.catch(() => {
          if (current === p) current = undefined;
        });
      }
      return current;
    },
    done: () => (mode === "on-demand" ? release() : Promise.resolve()),
    release,
  };
}
