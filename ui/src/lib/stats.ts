// Pure helpers for resource use (tested in tests/stats.test.ts): the
// points a container's stats stream leaves, their labels, and the SVG
// path of a sparkline.
import type { StatsSample } from './types';

/** One second of a container's resource use. */
export interface Point {
  /** Seconds since the epoch (uPlot's x axis). */
  t: number;
  /** CPU use in percent of one CPU. */
  cpu: number;
  /** Memory in use, bytes. */
  mem: number;
  /** The memory limit, bytes (0: none known). */
  limit: number;
}

/** How many points each container keeps (a minute at one a second). */
export const KEEP = 60;

/** The point a sample stands for. */
export function pointOf(s: StatsSample, now = Date.now()): Point {
  const t = s.time ? Date.parse(s.time) : NaN;
  return {
    t: (Number.isFinite(t) ? t : now) / 1000,
    cpu: Number.isFinite(s.cpu_percent) ? Math.max(0, s.cpu_percent) : 0,
    mem: s.memory_usage,
    limit: s.memory_limit,
  };
}

/** `history` with `p` added at the end, the oldest dropped past `keep`. */
export function append(history: readonly Point[], p: Point, keep = KEEP): Point[] {
  const out = history.length >= keep ? history.slice(history.length - keep + 1) : history.slice();
  out.push(p);
  return out;
}

/** `12.3%`, `0.4%`, `153%`: CPU use as Docker's stats prints it, one decimal below 100. */
export function percent(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '0%';
  return n >= 100 ? `${Math.round(n)}%` : `${n.toFixed(1)}%`;
}

/** Bytes in 1024-based units as `docker stats` shows memory: `12.4 MiB`. */
export function mib(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}

/** `12.4 MiB of 1.9 GiB`, or just the use when no limit is known. */
export function memoryLabel(usage: number, limit: number): string {
  return limit > 0 ? `${mib(usage)} of ${mib(limit)}` : mib(usage);
}

/** The SVG `points` of a sparkline of `values` in a `width` × `height`
 * box: the newest value at the right edge, 0 at the bottom, `max` (at
 * least the largest value) at the top. Empty for no values. */
export function sparkPoints(values: readonly number[], width: number, height: number, max = 0): string {
  if (!values.length) return '';
  const top = Math.max(max, ...values.map((v) => (Number.isFinite(v) ? v : 0))) || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const x0 = values.length > 1 ? 0 : width;
  return values
    .map((v, i) => {
      const y = height - (Math.max(0, Number.isFinite(v) ? v : 0) / top) * height;
      return `${round(x0 + i * step)},${round(y)}`;
    })
    .join(' ');
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** The VM's phase as a word for people. */
export function vmPhase(phase: string): string {
  const words: Record<string, string> = {
    ready: 'Running',
    stopped: 'Stopped',
    booting: 'Booting…',
    stopping: 'Stopping…',
    crashed: 'Restarting after a crash…',
  };
  return words[phase] ?? phase.charAt(0).toUpperCase() + phase.slice(1);
}
