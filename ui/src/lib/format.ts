// Pure helpers the views share (tested in tests/format.test.ts).
import type { ContainerSummary, PortBinding } from './types';

/** A container's name without Docker's leading slash. */
export function nameOf(c: ContainerSummary): string {
  const n = c.names[0] ?? c.id.slice(0, 12);
  return n.startsWith('/') ? n.slice(1) : n;
}

/** `8080→80/tcp`, or `80/tcp` when the port is not published. */
export function portLabel(p: PortBinding): string {
  return p.host_port ? `${p.host_port}→${p.container_port}/${p.protocol}` : `${p.container_port}/${p.protocol}`;
}

/** Containers whose name, image, state or id contain `filter` (any case). */
export function filterContainers(list: ContainerSummary[], filter: string): ContainerSummary[] {
  const f = filter.trim().toLowerCase();
  if (!f) return list;
  return list.filter((c) =>
    [nameOf(c), c.image, c.state, c.id].some((s) => s.toLowerCase().includes(f)),
  );
}

/** Bytes as a short human size (1000-based, as Docker prints). */
export function size(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** Splits a command line into words: spaces separate, quotes group. */
export function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let has = false;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      has = true;
    } else if (/\s/.test(ch)) {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else cur += ch;
  }
  if (has || cur) out.push(cur);
  return out;
}

/** `8080:80`, `8080:80/udp` or `80` as a port to publish; null when not a port. */
export function parsePort(s: string): { host: number; container: number; protocol: string } | null {
  const m = /^\s*(?:(\d{1,5}):)?(\d{1,5})(?:\/(tcp|udp))?\s*$/.exec(s);
  if (!m) return null;
  const host = m[1] ? Number(m[1]) : 0;
  const container = Number(m[2]);
  if (host > 65535 || container < 1 || container > 65535) return null;
  return { host, container, protocol: m[3] ?? 'tcp' };
}

/** Parts of `text` with the matches of `term` (any case) marked. */
export function highlight(text: string, term: string): { text: string; hit: boolean }[] {
  if (!term) return [{ text, hit: false }];
  const lower = text.toLowerCase();
  const t = term.toLowerCase();
  const out: { text: string; hit: boolean }[] = [];
  let at = 0;
  for (;;) {
    const i = lower.indexOf(t, at);
    if (i < 0) break;
    if (i > at) out.push({ text: text.slice(at, i), hit: false });
    out.push({ text: text.slice(i, i + t.length), hit: true });
    at = i + t.length;
  }
  if (at < text.length) out.push({ text: text.slice(at), hit: false });
  return out;
}

/** A history step's instruction as Dockerfile text: Docker's
 * `/bin/sh -c #(nop) ` prefix dropped, a bare shell command shown as RUN. */
export function instruction(createdBy: string): string {
  const s = createdBy.trim();
  const nop = s.match(/^\/bin\/sh -c #\(nop\)\s*(.*)$/s);
  if (nop) return nop[1].trim();
  const sh = s.match(/^\/bin\/sh -c (.*)$/s);
  if (sh) return `RUN ${sh[1].trim()}`;
  return s;
}

/** `KEY=VALUE` lines from a text box, blank lines dropped. */
export function lines(text: string): string[] {
  return text.split('\n').map((s) => s.trim()).filter(Boolean);
}
