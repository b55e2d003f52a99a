// Component tests of the image, volume, network, log-download and
// settings pieces, with the app's commands mocked: each action calls its
// command with what the user typed, and the engine's refusals are shown
// as its sentence.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import { tick } from 'svelte';

HTMLCanvasElement.prototype.getContext = (() => null) as never;
// jsdom has <dialog> but not its modal methods.
HTMLDialogElement.prototype.showModal = function (this: HTMLDialogElement) {
  this.open = true;
};
HTMLDialogElement.prototype.close = function (this: HTMLDialogElement) {
  this.open = false;
  this.dispatchEvent(new Event('close'));
};

/** What each command answers (a function of its arguments); a thrown
 * value is the command's failure. */
let replies: Record<string, (args: Record<string, unknown>) => unknown> = {};
const invoke = vi.fn(async (cmd: string, args: Record<string, unknown> = {}) => {
  const r = replies[cmd];
  if (args.channel) return 1;
  return r ? r(args) : null;
});
vi.mock('@tauri-apps/api/core', () => ({
  invoke: (cmd: string, args?: Record<string, unknown>) => invoke(cmd, args),
  Channel: class {
    onmessage = () => {};
  },
}));

const { engine } = await import('../src/lib/engine.svelte');
const Images = (await import('../src/views/Images.svelte')).default;
const Volumes = (await import('../src/views/Volumes.svelte')).default;
const Networks = (await import('../src/views/Networks.svelte')).default;
const Logs = (await import('../src/views/Logs.svelte')).default;
const Settings = (await import('../src/views/Settings.svelte')).default;

const XSS = '<img src=x onerror="window.pwned=1">';
const settle = async () => {
  for (let i = 0; i < 5; i++) await tick();
};

beforeEach(() => {
  invoke.mockClear();
  // The lists the views refresh after an action stay as they are.
  replies = {
    list_containers: () => [],
    list_images: () => engine.images,
    list_volumes: () => engine.volumes,
    list_networks: () => engine.networks,
  };
  engine.firstList = true;
  engine.images = [
    { id: 'sha256:' + 'a'.repeat(64), repo_tags: ['bb:latest'], repo_digests: [], created: null, size: 8_400_000, containers: 0 },
  ];
  engine.volumes = [{ name: 'data', driver: 'local', mountpoint: '/var/lib/berth/volumes/data' }];
  engine.networks = [
    { id: 'n'.repeat(64), name: 'bridge', driver: 'bridge' },
    { id: 'm'.repeat(64), name: 'backend', driver: 'bridge' },
  ];
});
afterEach(() => cleanup());

describe('Images', () => {
  it('tags an image with the name typed', async () => {
    render(Images);
    await fireEvent.click(screen.getByText('Tag…'));
    await fireEvent.input(screen.getByLabelText('New name'), { target: { value: 'bb:v2' } });
    await fireEvent.submit(screen.getByLabelText('New name').closest('form')!);
    await settle();
    expect(invoke).toHaveBeenCalledWith('tag_image', { source: 'bb:latest', target: 'bb:v2' });
    expect(document.querySelector('#tag-dialog')).toBeNull();
  });

  it('keeps the tag dialog open with the engine sentence when tagging fails', async () => {
    replies.tag_image = () => {
      throw { kind: 'InvalidArgument', message: 'BB:V2 is not a valid name: use lowercase letters' };
    };
    render(Images);
    await fireEvent.click(screen.getByText('Tag…'));
    await fireEvent.input(screen.getByLabelText('New name'), { target: { value: 'BB:V2' } });
    await fireEvent.submit(screen.getByLabelText('New name').closest('form')!);
    await settle();
    expect(screen.getByRole('alert').textContent).toBe('BB:V2 is not a valid name: use lowercase letters');
  });

  it('shows each history step with its instruction and size, as text', async () => {
    replies.image_history = () => [
      { created_by: '/bin/sh -c #(nop)  CMD ["sh"]', created: '2026-12-07T01:00:00Z', size: 0, empty_layer: true, comment: '' },
      { created_by: `/bin/sh -c echo '${XSS}' > /x`, created: null, size: 1500, empty_layer: false, comment: '' },
      { created_by: 'COPY . /app', created: null, size: 8_000_000, empty_layer: false, comment: '' },
    ];
    const { container } = render(Images);
    await fireEvent.click(screen.getByText('History'));
    await settle();
    expect(invoke).toHaveBeenCalledWith('image_history', { reference: 'bb:latest' });
    const steps = [...container.querySelectorAll('#history tr.step')].map((r) =>
      [...r.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent),
    );
    expect(steps).toEqual([
      ['CMD ["sh"]', '0 B'],
      [`RUN echo '${XSS}' > /x`, '1.5 kB'],
      ['COPY . /app', '8.0 MB'],
    ]);
    expect(container.querySelector('#history img')).toBeNull();
    expect(container.querySelector('#history-total')!.textContent).toBe('8.0 MB');
  });

  it('asks before removing an image', async () => {
    render(Images);
    await fireEvent.click(screen.getByText('Remove'));
    expect(invoke).not.toHaveBeenCalledWith('remove_image', expect.anything());
    await fireEvent.click(document.querySelector('#remove-image-ok')!);
    await settle();
    expect(invoke).toHaveBeenCalledWith('remove_image', { reference: 'bb:latest', force: false });
  });

  it('pushes with a progress panel', async () => {
    const { container } = render(Images);
    await fireEvent.click(screen.getByText('Push'));
    await settle();
    expect(invoke).toHaveBeenCalledWith('push', expect.objectContaining({ reference: 'bb:latest' }));
    expect(container.querySelector('#push-progress')).not.toBeNull();
  });
});

describe('Volumes', () => {
  it('creates a volume with its name and labels', async () => {
    render(Volumes);
    await fireEvent.click(screen.getByText('Create…'));
    await fireEvent.input(screen.getByLabelText('Name'), { target: { value: 'cache' } });
    await fireEvent.input(screen.getByLabelText('Labels'), { target: { value: 'team=web\n\n' } });
    await fireEvent.click(screen.getByText('Create'));
    await settle();
    expect(invoke).toHaveBeenCalledWith('create_volume', { name: 'cache', labels: ['team=web'] });
    expect(document.querySelector('#volume-dialog')).toBeNull();
  });

  it('shows the engine sentence when a volume in use cannot be removed', async () => {
    const why = 'volume data is in use: remove the containers that use it first';
    replies.remove_volume = () => {
      throw { kind: 'Conflict', message: why };
    };
    render(Volumes);
    await fireEvent.click(screen.getByText('Remove'));
    expect(screen.getByText('data and every file in it will be deleted.')).toBeTruthy();
    await fireEvent.click(document.querySelector('#remove-volume-ok')!);
    await settle();
    expect(invoke).toHaveBeenCalledWith('remove_volume', { name: 'data' });
    expect(screen.getByRole('alert').textContent).toBe(why);
    expect(document.querySelector('#remove-volume')).not.toBeNull();
  });

  it('inspects a volume as JSON text', async () => {
    replies.inspect_volume = () => ({ Name: 'data', Labels: { x: XSS } });
    render(Volumes);
    await fireEvent.click(screen.getByText('Inspect'));
    await settle();
    const pre = document.querySelector('#inspect-json')!;
    expect(JSON.parse(pre.textContent!)).toEqual({ Name: 'data', Labels: { x: XSS } });
    expect(pre.querySelector('img')).toBeNull();
  });
});

describe('Networks', () => {
  it('creates a network; the built-in ones cannot be removed', async () => {
    const { container } = render(Networks);
    expect(container.querySelector('tr[data-name=bridge] .remove')).toBeNull();
    expect(container.querySelector('tr[data-name=backend] .remove')).not.toBeNull();
    await fireEvent.click(screen.getByText('Create…'));
    await fireEvent.input(screen.getByLabelText('Name'), { target: { value: 'front' } });
    await fireEvent.input(screen.getByLabelText('Subnet'), { target: { value: '10.89.0.0/24' } });
    await fireEvent.click(screen.getByText('Create'));
    await settle();
    expect(invoke).toHaveBeenCalledWith('create_network', { name: 'front', subnet: '10.89.0.0/24', internal: false, labels: [] });
  });
});

describe('Logs download', () => {
  it('saves through the app and says where', async () => {
    replies.save_logs = () => '/root/Downloads/web.log';
    render(Logs, { id: 'c0ffee', name: 'web' });
    await fireEvent.click(screen.getByText('Download…'));
    await settle();
    expect(invoke).toHaveBeenCalledWith('save_logs', { id: 'c0ffee', name: 'web', timestamps: false });
    expect(screen.getByText('Saved the logs to /root/Downloads/web.log.')).toBeTruthy();
  });

  it('says nothing when the save dialog is cancelled', async () => {
    replies.save_logs = () => null;
    const { container } = render(Logs, { id: 'c0ffee', name: 'web' });
    await fireEvent.click(screen.getByText('Download…'));
    await settle();
    expect(container.querySelector('#log-saved')).toBeNull();
  });
});

describe('Settings', () => {
  it('saves "stop the engine when I quit" when it is ticked', async () => {
    replies.get_settings = () => ({
      settings: { stop_engine_on_quit: false, endpoints: [], endpoint: '' },
      file: '/root/.config/x/settings.json',
      vm_running: false,
    });
    render(Settings);
    await settle();
    const box = screen.getByLabelText('Stop the engine when I quit') as HTMLInputElement;
    expect(box.checked).toBe(false);
    await fireEvent.click(box);
    await settle();
    expect(invoke).toHaveBeenCalledWith('save_settings', {
      settings: { stop_engine_on_quit: true, endpoints: [], endpoint: '' },
    });
    expect(screen.getByText('Saved.')).toBeTruthy();
  });

  it('saves an engine, switches to it and reconnects', async () => {
    replies.get_settings = () => ({
      settings: { stop_engine_on_quit: false, endpoints: [], endpoint: '' },
      file: '',
      vm_running: false,
    });
    replies.connection = () => ({ endpoint: 'tcp://10.0.0.5:7070', source: 'your saved endpoint' });
    const { container } = render(Settings);
    await settle();
    await fireEvent.input(screen.getByLabelText('Engine name'), { target: { value: 'build box' } });
    await fireEvent.input(screen.getByLabelText('Engine URL'), { target: { value: 'tcp://10.0.0.5:7070' } });
    await fireEvent.submit(screen.getByLabelText('Engine URL').closest('form')!);
    await settle();
    expect(invoke).toHaveBeenCalledWith('save_settings', {
      settings: { stop_engine_on_quit: false, endpoints: [{ name: 'build box', url: 'tcp://10.0.0.5:7070' }], endpoint: '' },
    });
    await fireEvent.click(container.querySelector('tr[data-url="tcp://10.0.0.5:7070"] .use')!);
    await settle();
    expect(invoke).toHaveBeenCalledWith('use_endpoint', { url: 'tcp://10.0.0.5:7070' });
    expect(invoke).toHaveBeenCalledWith('connection', undefined);
    expect(container.querySelector('tr[data-url="tcp://10.0.0.5:7070"]')!.textContent).toContain('in use');
  });

  it('refuses an engine URL without a scheme, in a sentence', async () => {
    replies.get_settings = () => ({ settings: { stop_engine_on_quit: false, endpoints: [], endpoint: '' }, file: '', vm_running: false });
    render(Settings);
    await settle();
    await fireEvent.input(screen.getByLabelText('Engine URL'), { target: { value: '10.0.0.5:7070' } });
    await fireEvent.submit(screen.getByLabelText('Engine URL').closest('form')!);
    await settle();
    expect(screen.getByText(/10.0.0.5:7070 is not an endpoint/)).toBeTruthy();
    expect(invoke).not.toHaveBeenCalledWith('save_settings', expect.anything());
  });
});
