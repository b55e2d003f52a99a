// Component tests with the app's commands mocked: what the engine says is
// shown as text, logs are searchable, pull progress moves its bars.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import { flushSync, tick } from 'svelte';

// xterm asks for a canvas at import; jsdom has none.
HTMLCanvasElement.prototype.getContext = (() => null) as never;

type Handler = (m: unknown) => void;
const channels: Record<string, Handler> = {};
const invoke = vi.fn(async (cmd: string, args?: Record<string, unknown>) => {
  const ch = args?.channel as { onmessage: Handler } | undefined;
  if (ch) channels[cmd] = (m) => ch.onmessage(m);
  if (cmd === 'container_action') return (args!.ids as string[]).map((id) => ({ id, error: null }));
  return ch ? 1 : null;
});
vi.mock('@tauri-apps/api/core', () => ({
  invoke: (cmd: string, args?: Record<string, unknown>) => invoke(cmd, args),
  Channel: class {
    onmessage: Handler = () => {};
  },
}));

const { engine } = await import('../src/lib/engine.svelte');
const Containers = (await import('../src/views/Containers.svelte')).default;
const Logs = (await import('../src/views/Logs.svelte')).default;
const PullProgress = (await import('../src/views/PullProgress.svelte')).default;

const XSS = '<img src=x onerror="window.pwned=1">';
const summary = (id: string, name: string) => ({
  id, names: [`/${name}`], image: 'bb', image_id: '', command: '', created: null,
  state: 'running', status: 'Up', ports: [{ host_ip: '', host_port: 8080, container_port: 80, protocol: 'tcp' }], labels: {},
});

beforeEach(() => {
  invoke.mockClear();
  engine.firstList = true;
  engine.containers = [summary('a1', XSS), summary('b2', 'web')];
});
afterEach(() => cleanup());

describe('Containers', () => {
  it('shows a name that looks like HTML as text', () => {
    const { container } = render(Containers);
    expect(screen.getByText(XSS)).toBeTruthy();
    expect(container.querySelector('img')).toBeNull();
    expect(screen.getAllByText('8080→80/tcp')).toHaveLength(2);
  });

  it('filters, and acts on the selected containers only', async () => {
    render(Containers);
    await fireEvent.input(screen.getByLabelText('Filter containers'), { target: { value: 'web' } });
    expect(screen.queryByText(XSS)).toBeNull();
    await fireEvent.click(screen.getByLabelText('Select web'));
    await fireEvent.click(screen.getByText('Stop'));
    expect(invoke).toHaveBeenCalledWith('container_action', { ids: ['b2'], action: 'stop' });
  });

  it('streams the stats of running containers into CPU and memory columns', async () => {
    const { container } = render(Containers);
    await tick();
    const asked = invoke.mock.calls.filter(([cmd]) => cmd === 'stats').map(([, a]) => a!.id);
    expect(asked).toEqual(['a1', 'b2']);
    channels.stats({
      type: 'item',
      item: [{ id: 'b2', name: 'web', time: null, cpu_percent: 12.5, memory_usage: 3 * 1024 * 1024, memory_limit: 0,
        pids: 1, block_read: 0, block_write: 0, net_rx: 0, net_tx: 0 }],
    });
    flushSync();
    const row = container.querySelector('tr[data-name="web"]')!;
    expect(row.querySelector('.cpu')!.textContent).toContain('12.5%');
    expect(row.querySelector('.mem')!.textContent).toContain('3.0 MiB');
    expect(row.querySelector('svg[aria-label="CPU of web"] polyline')).not.toBeNull();
  });

  it('stops streaming stats while the window is hidden, and keeps what it drew', async () => {
    const { container } = render(Containers);
    await tick();
    channels.stats({
      type: 'item',
      item: [{ id: 'b2', name: 'web', time: null, cpu_percent: 2, memory_usage: 1024, memory_limit: 0,
        pids: 1, block_read: 0, block_write: 0, net_rx: 0, net_tx: 0 }],
    });
    flushSync();
    invoke.mockClear();
    const visibility = vi.spyOn(document, 'visibilityState', 'get').mockReturnValue('hidden');
    document.dispatchEvent(new Event('visibilitychange'));
    await tick();
    await Promise.resolve();
    expect(invoke.mock.calls.filter(([cmd]) => cmd === 'stop_stream')).toHaveLength(2);
    flushSync();
    expect(container.querySelector('tr[data-name="web"] .cpu')!.textContent).toContain('2.0%');
    visibility.mockReturnValue('visible');
    document.dispatchEvent(new Event('visibilitychange'));
    await tick();
    expect(invoke.mock.calls.filter(([cmd]) => cmd === 'stats').map(([, a]) => a!.id)).toEqual(['a1', 'b2']);
    visibility.mockRestore();
  });
});

describe('the list\'s stats', () => {
  const sample = (cpu: number) => ({
    type: 'item',
    item: [{ id: 'b2', name: 'web', time: null, cpu_percent: cpu, memory_usage: 1024, memory_limit: 0,
      pids: 1, block_read: 0, block_write: 0, net_rx: 0, net_tx: 0 }],
  });

  it('shows the first batch at once, then the batches that come together in one update', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const { container } = render(Containers);
      await tick();
      // The list asks for batches every 3 s.
      expect(invoke.mock.calls.find(([cmd]) => cmd === 'stats')![1]).toMatchObject({ every: 3 });
      const cpu = () => container.querySelector('tr[data-name="web"] .cpu')!.textContent;
      channels.stats(sample(1));
      flushSync();
      expect(cpu()).toContain('1.0%');
      expect(vi.getTimerCount()).toBe(0);
      channels.stats({ type: 'item', item: [sample(2).item[0], sample(3).item[0]] });
      flushSync();
      expect(cpu()).toContain('1.0%');
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(100);
      flushSync();
      expect(cpu()).toContain('3.0%');
      const line = container.querySelector('svg[aria-label="CPU of web"] polyline')!.getAttribute('points')!;
      expect(line.split(' ')).toHaveLength(3);
      // Nothing waits: no timer.
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('the Stats tab', () => {
  it('asks for its container each second while it is open, then every 3 s again', async () => {
    const { container } = render(Containers);
    await tick();
    const asked = () => invoke.mock.calls.filter(([cmd]) => cmd === 'stats').map(([, a]) => `${a!.id}/${a!.every}`);
    expect(asked()).toEqual(['a1/3', 'b2/3']);
    invoke.mockClear();
    await fireEvent.click(container.querySelector('tr[data-name="web"] button.cname')!);
    await tick();
    await Promise.resolve();
    expect(asked()).toEqual(['b2/1']);
    expect(invoke.mock.calls.filter(([cmd]) => cmd === 'stop_stream')).toHaveLength(1);
    invoke.mockClear();
    await fireEvent.click(container.querySelector('tr[data-name="web"] button.cname')!);
    await tick();
    expect(asked()).toEqual(['b2/3']);
  });
});

describe('Logs', () => {
  it('streams lines as text and finds them with search', async () => {
    const { container } = render(Logs, { id: 'a1' });
    await tick();
    await vi.waitFor(() => expect(channels.logs).toBeTruthy());
    channels.logs({ type: 'item', item: { stream: 'stdout', text: 'hello world\n', time: null } });
    channels.logs({ type: 'item', item: { stream: 'stderr', text: `${XSS}\n`, time: null } });
    flushSync();
    expect(container.querySelector('img')).toBeNull();
    expect(container.textContent).toContain(XSS);
    await fireEvent.input(screen.getByLabelText('Search the logs'), { target: { value: 'WORLD' } });
    expect(container.querySelectorAll('.line')).toHaveLength(1);
    expect(container.querySelector('mark')!.textContent).toBe('world');
  });
});

describe('PullProgress', () => {
  it('moves each layer bar as progress arrives', async () => {
    const { container } = render(PullProgress, { reference: 'bb' });
    await vi.waitFor(() => expect(channels.pull).toBeTruthy());
    const layer = (current: number) =>
      channels.pull({ type: 'item', item: { kind: 'layer', id: 'abc', status: 'Downloading', current, total: 100 } });
    layer(10);
    flushSync();
    const bar = () => container.querySelector('progress')!;
    expect(bar().value).toBe(10);
    layer(60);
    flushSync();
    expect(bar().value).toBe(60);
    channels.pull({ type: 'item', item: { kind: 'pulled' } });
    channels.pull({ type: 'end' });
    flushSync();
    expect(container.querySelector('#pull-progress')!.getAttribute('data-state')).toBe('done');
    expect(container.querySelector('[data-layer=abc]')!.getAttribute('data-updates')).toBe('2');
  });
});
