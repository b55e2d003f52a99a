// Live resource use of the containers the views show: one stats stream
// per running container (the agent sends a sample a second), kept as the
// last minute of points. Views say which containers they want with
// `want(owner, ids, every)`; a stream runs while any owner wants its
// container and the window is visible, and stops when none does, when the
// window is hidden, when the container stops, or on an error.
//
// What idles the app is repainting, not the samples: each change to the
// history repaints the WebView (the web process paints, the app copies
// the frame to the window). So the streams of containers only the list
// wants (`every` > 1) send their samples in batches at the clock's
// multiples of `every` seconds (the app holds them: streams.rs), and the
// batches that come within SETTLE ms of each other are shown together:
// one message per row and one repaint for all rows every few seconds,
// instead of one of each per container per second. A container's first
// point comes at once, and one a view wants each second (the Stats tab)
// as it comes. The one timer runs only while a batch waits: with nothing
// streaming, nothing runs.
import { SvelteMap } from 'svelte/reactivity';
import { api, type StreamHandle } from './api';
import { append, pointOf, type Point } from './stats';

/** How often the list shows new points, in seconds. */
export const LIST_EVERY = 3;
/** Batches that come this close together are shown at once (ms). */
const SETTLE = 100;

class Stats {
  /** The last minute of points of each watched container. */
  history = new SvelteMap<string, Point[]>();
  /** The open streams, and the `every` each was opened with. */
  private streams = new Map<string, { every: number; handle: Promise<StreamHandle | null> }>();
  private owners = new Map<string, { ids: readonly string[]; every: number }>();
  /** Points not shown yet, by container, and the timer that shows them. */
  private pending = new Map<string, Point[]>();
  private flushAt: ReturnType<typeof setTimeout> | null = null;

  /** `owner` (a view) wants the stats of `ids` now, and no others, shown
   * every `every` seconds (1: as each sample comes). */
  want(owner: string, ids: readonly string[], every = 1): void {
    this.owners.set(owner, { ids: [...ids], every });
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

  /** How often `id`'s points are shown: the shortest any owner asks. */
  private everyOf(id: string): number {
    let every = Infinity;
    for (const o of this.owners.values()) if (o.ids.includes(id)) every = Math.min(every, o.every);
    return every === Infinity ? 1 : every;
  }

  private sync(): void {
    const hidden = typeof document !== 'undefined' && document.visibilityState === 'hidden';
    const wanted = hidden ? [] : [...this.owners.values()].flatMap((o) => o.ids);
    for (const id of [...this.streams.keys()]) if (!wanted.includes(id)) this.close(id, hidden);
    for (const id of wanted) {
      // A container now wanted more (or less) often: its stream again.
      const s = this.streams.get(id);
      if (s && s.every !== this.everyOf(id)) this.close(id, true);
      if (!this.streams.has(id)) this.open(id);
    }
    if (hidden) this.flush();
  }

  /** A batch of `id`'s samples came. */
  private batch(id: string, ps: Point[]): void {
    this.pending.set(id, [...(this.pending.get(id) ?? []), ...ps]);
    if (this.everyOf(id) <= 1 || !this.history.get(id)?.length) this.show(id);
    else if (this.flushAt === null) this.flushAt = setTimeout(() => this.flush(), SETTLE);
  }

  /** Shows the points waiting for `id`. */
  private show(id: string): void {
    const ps = this.pending.get(id);
    this.pending.delete(id);
    if (!ps?.length) return;
    this.history.set(id, ps.reduce((h, p) => append(h, p), this.history.get(id) ?? []));
  }

  /** Shows every point waiting (one repaint). */
  private flush(): void {
    if (this.flushAt !== null) clearTimeout(this.flushAt);
    this.flushAt = null;
    for (const id of [...this.pending.keys()]) this.show(id);
  }

  private open(id: string): void {
    const every = this.everyOf(id);
    const entry = { every, handle: Promise.resolve<StreamHandle | null>(null) };
    const ended = () => {
      // The container stopped (or the agent went away): the stream is
      // gone; a later `want` (after a start event) opens a new one.
      if (this.streams.get(id) === entry) this.streams.delete(id);
    };
    entry.handle = api
      .stats(id, every, {
        // A batch still on its way from a stream since closed is dropped.
        item: (b) => {
          if (this.streams.get(id) === entry) this.batch(id, b.map((s) => pointOf(s)));
        },
        end: ended,
        error: ended,
      })
      .catch(() => {
        ended();
        return null;
      });
    this.streams.set(id, entry);
  }

  /** Stops `id`'s stream; its points stay when `keep` (the window was
   * only hidden). */
  private close(id: string, keep = false): void {
    const h = this.streams.get(id)?.handle;
    this.streams.delete(id);
    if (!keep) {
      this.history.delete(id);
      this.pending.delete(id);
    }
    void h?.then((s) => s?.stop()).catch(() => {});
  }
}

export const stats = new Stats();
