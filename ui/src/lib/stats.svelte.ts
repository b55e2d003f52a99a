// Live resource use of the containers the views show: one stats stream
// per running container (the agent sends a sample a second), kept as the
// last minute of points. Views say which containers they want with
// `want(owner, ids)`; a stream runs while any owner wants its container
// and the window is visible, and stops when none does, when the window
// is hidden, when the container stops, or on an error.
import { SvelteMap } from 'svelte/reactivity';
import { api, type StreamHandle } from './api';
import { append, pointOf, type Point } from './stats';

class Stats {
  /** The last minute of points of each watched container. */
  history = new SvelteMap<string, Point[]>();
  private streams = new Map<string, Promise<StreamHandle | null>>();
  private owners = new Map<string, readonly string[]>();

  /** `owner` (a view) wants the stats of `ids` now, and no others. */
  want(owner: string, ids: readonly string[]): void {
    this.owners.set(owner, [...ids]);
    this.sync();
  }

  /** `owner` wants no stats any more. */
  release(owner: string): void {
    this.owners.delete(owner);
    this.sync();
  }

  constructor() {
    // A hidden window (minimized, or closed to the tray) streams nothing.
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', () => this.sync());
  }

  private sync(): void {
    const hidden = typeof document !== 'undefined' && document.visibilityState === 'hidden';
    const wanted = hidden ? [] : [...this.owners.values()].flat();
    for (const id of wanted) if (!this.streams.has(id)) this.open(id);
    for (const id of [...this.streams.keys()]) if (!wanted.includes(id)) this.close(id, hidden);
  }

  private open(id: string): void {
    const ended = () => {
      // The container stopped (or the agent went away): the stream is
      // gone; a later `want` (after a start event) opens a new one.
      this.streams.delete(id);
    };
    const handle = api
      .stats(id, {
        item: (s) => this.history.set(id, append(this.history.get(id) ?? [], pointOf(s))),
        end: ended,
        error: ended,
      })
      .catch(() => {
        ended();
        return null;
      });
    this.streams.set(id, handle);
  }

  /** Stops `id`'s stream; its points stay when `keep` (the window was
   * only hidden). */
  private close(id: string, keep = false): void {
    const h = this.streams.get(id);
    this.streams.delete(id);
    if (!keep) this.history.delete(id);
    void h?.then((s) => s?.stop()).catch(() => {});
  }
}

export const stats = new Stats();
