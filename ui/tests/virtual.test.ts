// The container list is virtualized: 500 containers keep a few dozen rows
// in the DOM, scrolling brings others in, and selection, filter and bulk
// actions still act on every container, seen or not. Also the timings the
// benchmark reads (a change painted after its event).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import { flushSync, tick } from 'svelte';
import { windowOf } from '../src/lib/virtual';

const invoke = vi.fn(async (cmd: string, args?: Record<string, unknown>): Promise<unknown> => {
  if (cmd === 'container_action') return (args!.ids as string[]).map((id) => ({ id, error: null }));
  if (cmd === 'list_containers') return many(500);
  if (cmd === 'painted') return true;
  return args?.channel ? 1 : null;
});
vi.mock('@tauri-apps/api/core', () => ({
  invoke: (cmd: string, args?: Record<string, unknown>) => invoke(cmd, args),
  Channel: class {
    onmessage = () => {};
  },
}));

const { engine, patched, timeOf } = await import('../src/lib/engine.svelte');
const Containers = (await import('../src/views/Containers.svelte')).default;

const many = (n: number, state = 'running') =>
  Array.from({ length: n }, (_, i) => ({
    id: `id${i}`, names: [`/box-${i}`], image: i % 2 ? 'bb' : 'web', image_id: '', command: '', created: null,
    state, status: state === 'running' ? 'Up' : 'Exited (0)', ports: [], labels: {},
  }));
const rows = (c: HTMLElement) => [...c.querySelectorAll('#containers tbody tr.row')] as HTMLElement[];

beforeEach(() => {
  invoke.mockClear();
  engine.firstList = true;
  engine.containers = many(500);
});
afterEach(() => cleanup());

describe('windowOf', () => {
  it('keeps the rows in view and the overscan, and the room of the others', () => {
    expect(windowOf(0, 0, 600, 34, 8)).toEqual({ start: 0, end: 0, before: 0, after: 0 });
    const top = windowOf(500, 0, 340, 34, 8);
    expect(top).toEqual({ start: 0, end: 19, before: 0, after: 481 * 34 });
    const mid = windowOf(500, 3400, 340, 34, 8);
    expect([mid.start, mid.end]).toEqual([92, 119]);
    expect(mid.before + (mid.end - mid.start) * 34 + mid.after).toBe(500 * 34);
    const end = windowOf(500, 1e9, 340, 34, 8);
    expect([end.end, end.after]).toEqual([500, 0]);
    expect(windowOf(3, 0, 600, 34, 8)).toEqual({ start: 0, end: 3, before: 0, after: 0 });
  });
});

describe('a list of 500 containers', () => {
  it('holds far fewer rows in the DOM, and brings others in as it scrolls', async () => {
    const { container } = render(Containers);
    await tick();
    const table = container.querySelector('#containers') as HTMLElement;
    expect(table.dataset.count).toBe('500');
    expect(rows(container).length).toBeLessThanOrEqual(40);
    expect(rows(container)[0].dataset.name).toBe('box-0');
    // The rows left out keep their room, so the scroll bar is the whole list's.
    const pads = [...container.querySelectorAll('tr.pad')] as HTMLElement[];
    expect(pads.map((p) => parseInt(p.style.height))).toEqual([(500 - rows(container).length) * 34]);
    // Only the rows in view stream stats (600 pixels of 34-pixel rows:
    // 18 and the one cut at the bottom), not the overscan below.
    const streamed = invoke.mock.calls.filter(([cmd]) => cmd === 'stats').map(([, a]) => a!.id);
    expect(streamed).toEqual(rows(container).slice(0, 19).map((r) => `id${r.dataset.name!.slice(4)}`));

    const scroller = container.querySelector('#containers-scroll') as HTMLElement;
    scroller.scrollTop = 250 * 34;
    await fireEvent.scroll(scroller);
    flushSync();
    const names = rows(container).map((r) => r.dataset.name);
    expect(names).toContain('box-250');
    expect(names).not.toContain('box-0');
    expect(rows(container).length).toBeLessThanOrEqual(40);
    expect(container.querySelector('tr[data-name="box-250"]')!.getAttribute('aria-rowindex')).toBe('252');
  });

  it('lets Tab and Shift+Tab reach rows that are not in the DOM yet', async () => {
    const { container } = render(Containers);
    await tick();
    const last = rows(container).at(-1)!;
    const index = Number(last.getAttribute('aria-rowindex')) - 2;
    expect(container.querySelector(`tr[aria-rowindex="${index + 3}"]`)).toBeNull();
    // Tab from the last control of the last row the DOM holds.
    const end = [...last.querySelectorAll('button, input')].at(-1) as HTMLElement;
    end.focus();
    await fireEvent.keyDown(end, { key: 'Tab' });
    await tick();
    const next = document.activeElement!.closest('tr')!;
    expect(next.dataset.name).toBe(`box-${index + 1}`);
    expect(document.activeElement!.getAttribute('aria-label')).toBe(`Select box-${index + 1}`);
    // Tab inside a row is the browser's own.
    const inRow = await fireEvent.keyDown(document.activeElement!, { key: 'Tab' });
    expect(inRow).toBe(true);

    // Back up from row 120 to row 0, one Shift+Tab a row, never out of the list.
    const scroller = container.querySelector('#containers-scroll') as HTMLElement;
    scroller.scrollTop = 120 * 34;
    await fireEvent.scroll(scroller);
    flushSync();
    (container.querySelector('tr[data-name="box-120"] input') as HTMLElement).focus();
    for (let i = 119; i >= 0; i--) {
      await fireEvent.keyDown(document.activeElement!, { key: 'Tab', shiftKey: true });
      await tick();
      expect(document.activeElement!.closest('tr')!.dataset.name).toBe(`box-${i}`);
      (document.activeElement!.closest('tr')!.querySelector('input') as HTMLElement).focus();
    }
  });

  it('selects all 500 (seen or not) and acts on them; the filter narrows the list', async () => {
    const { container } = render(Containers);
    await tick();
    await fireEvent.click(screen.getByLabelText('Select all'));
    expect(container.querySelector('#selected-count')!.textContent).toBe('500 selected');
    await fireEvent.click(screen.getByText('Stop'));
    const call = invoke.mock.calls.find(([cmd]) => cmd === 'container_action')!;
    expect((call[1]!.ids as string[]).length).toBe(500);
    expect((call[1]!.ids as string[])[499]).toBe('id499');

    await fireEvent.click(screen.getByLabelText('Select all'));
    expect(container.querySelector('#selected-count')!.textContent).toBe('0 selected');
    await fireEvent.input(screen.getByLabelText('Filter containers'), { target: { value: 'box-49' } });
    flushSync();
    // box-49 and box-490…499.
    expect(rows(container).map((r) => r.dataset.name)).toEqual(['box-49', ...Array.from({ length: 10 }, (_, i) => `box-49${i}`)]);
    await fireEvent.click(screen.getByLabelText('Select box-495'));
    await fireEvent.click(screen.getByText('Remove'));
    const removed = invoke.mock.calls.filter(([cmd]) => cmd === 'container_action').pop()!;
    expect(removed[1]).toEqual({ ids: ['id495'], action: 'remove' });
  });

  it('shows a state change from the events stream, and times it when asked', async () => {
    vi.stubGlobal('requestAnimationFrame', (f: FrameRequestCallback) => setTimeout(() => f(0), 0));
    engine.firstList = false;
    const { container } = render(Containers);
    await engine.refreshContainers();
    await vi.waitFor(() => expect(invoke).toHaveBeenCalledWith('painted', { count: 500 }));
    await new Promise((r) => setTimeout(r, 0));
    const sent = new Date(Date.now() - 5).toISOString().replace('Z', '123456Z');
    engine.onEvent({ type: 'container', action: 'die', id: 'id0', attributes: {}, time: sent });
    // The event's state is shown at once, before the engine's list.
    flushSync();
    expect(rows(container)[0].dataset.state).toBe('exited');
    expect(rows(container)[1].dataset.state).toBe('running');
    await vi.waitFor(() => expect(invoke.mock.calls.some(([cmd]) => cmd === 'change_painted')).toBe(true));
    const args = invoke.mock.calls.find(([cmd]) => cmd === 'change_painted')![1]!;
    expect(args.count).toBe(500);
    expect(args.what).toBe('change');
    expect(args.afterEvent as number).toBeGreaterThanOrEqual(5);
    expect(args.afterEvent as number).toBeLessThan(5000);
    vi.unstubAllGlobals();
  });
});

describe('patched', () => {
  it('applies an event to its container only, and keeps the list when nothing changes', () => {
    const list = many(3, 'running');
    const ev = (action: string, id = 'id1', attributes: Record<string, string> = {}) =>
      ({ type: 'container', action, id, attributes, time: null });
    const died = patched(list, ev('die', 'id1', { exitCode: '137' }));
    expect(died.map((c) => c.state)).toEqual(['running', 'exited', 'running']);
    expect(died[1].status).toBe('Exited (137) Less than a second ago');
    expect(died[0]).toBe(list[0]);
    expect(list[1].state).toBe('running');
    expect(patched(died, ev('start')).map((c) => c.state)).toEqual(['running', 'running', 'running']);
    expect(patched(list, ev('pause'))[1].state).toBe('paused');
    expect(patched(list, ev('destroy')).map((c) => c.id)).toEqual(['id0', 'id2']);
    expect(patched(list, ev('die', 'nobody'))).toBe(list);
    expect(patched(list, ev('exec_start'))).toBe(list);
  });

  it('keeps an event applied when an older list arrives after it', async () => {
    const answers: ((v: unknown) => void)[] = [];
    const later = () => new Promise((r) => answers.push(r));
    invoke.mockImplementationOnce(later).mockImplementationOnce(later);
    const load = engine.refreshContainers();
    engine.onEvent({ type: 'container', action: 'die', id: 'id3', attributes: {}, time: null });
    expect(engine.containers[3].state).toBe('exited');
    // The list asked for before the event still says running.
    answers[0](many(500, 'running'));
    await vi.waitFor(() => expect(answers).toHaveLength(2));
    expect(engine.containers[3].state).toBe('exited');
    expect(engine.containers[4].state).toBe('running');
    // The one asked for after it is the engine's word.
    const truth = many(500, 'running');
    truth[3] = { ...truth[3], state: 'exited', status: 'Exited (0) 1 second ago' };
    answers[1](truth);
    await load;
    expect(engine.containers[3].status).toBe('Exited (0) 1 second ago');
  });
});

describe('timeOf', () => {
  it('reads RFC 3339 times with nanoseconds', () => {
    expect(timeOf('1970-01-01T00:00:01.000500000Z')).toBeCloseTo(1000.5, 6);
    expect(timeOf('1970-01-01T00:00:01Z')).toBe(1000);
    expect(timeOf('1970-01-01T01:00:00+01:00')).toBe(0);
    expect(timeOf('')).toBeNull();
    expect(timeOf(null)).toBeNull();
  });
});
