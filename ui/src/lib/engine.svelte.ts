// The connection to the engine and the lists every view shows. The lists
// are refreshed when the events stream says something changed; when the
// stream fails or ends (the agent went away) the status bar says so and
// the app subscribes again with a backoff. No timer runs while connected.
import { api, kindOf, sentence, type StreamHandle } from './api';
import type { ContainerSummary, EngineEvent, ImageSummary, Network, Volume } from './types';

type Status = 'connecting' | 'connected' | 'down';

/** A container event: when the engine sent it (ms since 1970) and when
 * the app heard it (`performance.now()`). */
interface Heard {
  sent: number;
  got: number;
}

/** `list` with what container event `e` says applied: the container's
 * new state (and a short status until the engine's own), or without it
 * when it was removed; `list` itself when the event changes nothing. */
export function patched(list: ContainerSummary[], e: EngineEvent): ContainerSummary[] {
  const i = list.findIndex((c) => c.id === e.id);
  if (i < 0) return list;
  if (e.action === 'destroy') return list.filter((_, j) => j !== i);
  const code = e.attributes?.exitCode;
  const change: Partial<ContainerSummary> | undefined = {
    start: { state: 'running', status: 'Up Less than a second' },
    restart: { state: 'running', status: 'Up Less than a second' },
    unpause: { state: 'running', status: 'Up' },
    pause: { state: 'paused', status: 'Up (Paused)' },
    die: { state: 'exited', status: code ? `Exited (${code}) Less than a second ago` : 'Exited' },
  }[e.action];
  const c = list[i];
  if (!change || (change.state === c.state && change.status === c.status)) return list;
  const out = list.slice();
  out[i] = { ...c, ...change };
  return out;
}

/** Runs `f` once the next frame has been painted. */
function afterPaint(f: () => void): void {
  requestAnimationFrame(() => setTimeout(f, 0));
}

/** An RFC 3339 time with up to nanoseconds, in ms since 1970 (to the
 * microsecond); null when it is not one. */
export function timeOf(t: string | null | undefined): number | null {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(t ?? '');
  if (!m) return null;
  const whole = Date.parse(m[1] + m[3]);
  if (Number.isNaN(whole)) return null;
  return whole + Number(`0.${m[2] ?? '0'}`) * 1000;
}

/** Refreshes a list, at most one call at a time; a change during a call
 * runs one more call after it. */
class Refresher<T> {
  private running = false;
  private again = false;
  constructor(
    private load: () => Promise<T>,
    private set: (v: T) => void,
    private fail: (e: unknown) => void,
  ) {}
  async run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        this.set(await this.load());
      } while (this.again);
    } catch (e) {
      this.fail(e);
    } finally {
      this.running = false;
    }
  }
}

export class Engine {
  status = $state<Status>('connecting');
  sentence = $state('Connecting to the Berth engine…');
  endpoint = $state('');
  /** Replaced whole, never changed in place (a raw state: 500 rows are
   * not made deeply reactive). */
  containers = $state.raw<ContainerSummary[]>([]);
  images = $state<ImageSummary[]>([]);
  volumes = $state<Volume[]>([]);
  networks = $state<Network[]>([]);
  /** The last failure of an action, shown until the next one. */
  notice = $state('');
  /** How many times each container was seen starting (terminals reopen
   * their shell after a restart). */
  starts = $state<Record<string, number>>({});
  /** Set once the container list has been painted the first time. */
  firstList = $state(false);

  private events: StreamHandle | null = null;
  private attempt = 0;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private onFail = (e: unknown) => {
    if (kindOf(e) === 'Unavailable') this.lost(sentence(e));
    else this.notice = sentence(e);
  };
  /** With the app's timings on (`BERTH_DESKTOP_TIMINGS`, for
   * bench/desktop.sh): container events not yet in a list being loaded. */
  private timings = false;
  private heard: Heard[] = [];
  /** Container events applied to the list before the engine's next list
   * holds them, numbered: a list asked for before event N is shown with
   * events N and later applied again. */
  private seq = 0;
  private patches: { seq: number; e: EngineEvent }[] = [];
  private c = new Refresher(
    async () => {
      // A list asked for now shows every event heard so far.
      const from = this.seq;
      const heard = this.heard.splice(0);
      return { list: await api.containers(), heard, from };
    },
    ({ list, heard, from }) => {
      this.patches = this.patches.filter((p) => p.seq > from);
      this.containers = this.patches.reduce((l, p) => patched(l, p.e), list);
      if (!this.firstList) {
        this.firstList = true;
        // After the next frame is painted: the app logs its start-up time.
        afterPaint(() =>
          void api.painted(list.length).then((t) => (this.timings = t === true)).catch(() => {}),
        );
      } else if (heard.length) {
        this.timed('list refresh', heard);
      }
    },
    this.onFail,
  );

  /** Tells the app, after the next paint, how long after their events
   * the list showing `heard` was painted. */
  private timed(what: 'change' | 'list refresh', heard: Heard[]): void {
    const count = this.containers.length;
    afterPaint(() => {
      const now = Date.now();
      const late = Math.max(...heard.map((h) => now - h.sent));
      const local = Math.max(...heard.map((h) => performance.now() - h.got));
      void api.changePainted(late, local, count, what).catch(() => {});
    });
  }
  private i = new Refresher(api.images, (v) => (this.images = v), this.onFail);
  private v = new Refresher(api.volumes, (v) => (this.volumes = v), this.onFail);
  private n = new Refresher(api.networks, (v) => (this.networks = v), this.onFail);

  async start(): Promise<void> {
    const c = await api.connection();
    this.endpoint = `${c.endpoint} (from ${c.source})`;
    await this.connect();
  }

  /** Drops the connection and starts again (after the endpoint changed). */
  async reconnect(): Promise<void> {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    const ev = this.events;
    this.events = null;
    if (ev) await ev.stop().catch(() => {});
    this.attempt = 0;
    this.status = 'connecting';
    this.sentence = 'Connecting to the Berth engine…';
    this.containers = [];
    this.images = [];
    this.volumes = [];
    this.networks = [];
    await this.start();
  }

  /** Subscribes to events, then loads every list (so no change is missed). */
  async connect(): Promise<void> {
    this.retry = null;
    try {
      this.events = await api.events({
        item: (e) => this.onEvent(e),
        // A broken stream carries the transport's words: say it plainly;
        // the next attempt's failure (the client's sentence) replaces it.
        end: () => this.lost('The Berth engine closed the connection.'),
        error: () => this.lost('The connection to the Berth engine was lost.'),
      });
    } catch (e) {
      this.lost(sentence(e));
      return;
    }
    this.attempt = 0;
    this.status = 'connected';
    this.sentence = `Connected to ${this.endpoint}.`;
    await Promise.all([this.c.run(), this.i.run(), this.v.run(), this.n.run()]);
  }

  /** The agent is unreachable: say so, and try again after a backoff
   * (0.5 s doubling to 5 s). */
  lost(why: string): void {
    if (this.events) {
      const ev = this.events;
      this.events = null;
      void ev.stop().catch(() => {});
    }
    this.status = 'down';
    this.sentence = `The Berth engine is not reachable; reconnecting. ${why}`;
    if (this.retry) return;
    const delay = Math.min(500 * 2 ** this.attempt, 5000);
    this.attempt++;
    this.retry = setTimeout(() => void this.connect(), delay);
  }

  onEvent(e: EngineEvent): void {
    if (e.type === 'container') {
      const heard = { sent: timeOf(e.time) ?? Date.now(), got: performance.now() };
      if (this.timings) this.heard.push(heard);
      // The state the event says is shown at once; the list that follows
      // brings the rest (status text, ports).
      const next = patched(this.containers, e);
      if (next !== this.containers) {
        this.patches.push({ seq: ++this.seq, e });
        this.containers = next;
        if (this.timings) this.timed('change', [heard]);
      }
    }
    if (e.type === 'container' && (e.action === 'start' || e.action === 'restart'))
      this.starts[e.id] = (this.starts[e.id] ?? 0) + 1;
    if (e.type === 'container') void this.c.run();
    if (e.type === 'image' || (e.type === 'container' && (e.action === 'create' || e.action === 'destroy')))
      void this.i.run();
    if (e.type === 'volume') void this.v.run();
    if (e.type === 'network') void this.n.run();
  }

  refreshImages(): Promise<void> {
    return this.i.run();
  }

  refreshContainers(): Promise<void> {
    return this.c.run();
  }

  refreshVolumes(): Promise<void> {
    return this.v.run();
  }

  refreshNetworks(): Promise<void> {
    return this.n.run();
  }
}

export const engine = new Engine();
