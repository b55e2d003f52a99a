import { describe, expect, it } from 'vitest';
import { append, memoryLabel, mib, percent, pointOf, sparkPoints, vmPhase } from '../src/lib/stats';

const sample = (cpu: number, mem: number, time: string | null = '2026-12-07T05:00:00Z') => ({
  id: 'a', name: 'web', time, cpu_percent: cpu, memory_usage: mem, memory_limit: 2 ** 30,
  pids: 1, block_read: 0, block_write: 0, net_rx: 0, net_tx: 0,
});

describe('stats', () => {
  it('CPU reads as docker stats prints it', () => {
    expect(percent(12.345)).toBe('12.3%');
    expect(percent(0)).toBe('0.0%');
    expect(percent(153.4)).toBe('153%');
    expect(percent(NaN)).toBe('0%');
  });
  it('memory reads in 1024-based units, with its limit when known', () => {
    expect(mib(512)).toBe('512 B');
    expect(mib(13 * 1024 * 1024)).toBe('13.0 MiB');
    expect(memoryLabel(1536 * 1024, 2 ** 30)).toBe('1.5 MiB of 1.0 GiB');
    expect(memoryLabel(1536 * 1024, 0)).toBe('1.5 MiB');
  });
  it('a sample becomes a point at its own time', () => {
    const p = pointOf(sample(5, 100));
    expect(p).toEqual({ t: Date.parse('2026-12-07T05:00:00Z') / 1000, cpu: 5, mem: 100, limit: 2 ** 30 });
    expect(pointOf(sample(-1, 0, null), 3000).t).toBe(3);
    expect(pointOf(sample(-1, 0)).cpu).toBe(0);
  });
  it('history keeps the newest points only', () => {
    let h = [] as ReturnType<typeof pointOf>[];
    for (let i = 0; i < 5; i++) h = append(h, { t: i, cpu: i, mem: 0, limit: 0 }, 3);
    expect(h.map((p) => p.t)).toEqual([2, 3, 4]);
  });
  it('a sparkline spans its box, newest at the right, zero at the bottom', () => {
    expect(sparkPoints([], 60, 16)).toBe('');
    expect(sparkPoints([0, 5, 10], 60, 16)).toBe('0,16 30,8 60,0');
    // A floor for the top: 1% of CPU does not fill the box.
    expect(sparkPoints([1, 1], 60, 16, 4)).toBe('0,12 60,12');
    expect(sparkPoints([3], 60, 16)).toBe('60,0');
  });
  it('VM phases read as words', () => {
    expect(vmPhase('ready')).toBe('Running');
    expect(vmPhase('stopped')).toBe('Stopped');
    expect(vmPhase('failed')).toBe('Failed');
  });
});

describe('locale', () => {
  it('a language Intl refuses (WebKit under LANG=C) reads as en-US', async () => {
    const { usableLanguage } = await import('../src/lib/locale');
    expect(usableLanguage('C')).toBe('en-US');
    expect(usableLanguage('de-DE')).toBe('de-DE');
  });
});
