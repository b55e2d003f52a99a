// Component tests of the Files tab (browse, edit, download, upload) and of
// the Engine view's disk usage and prune, with the app's commands mocked:
// each action calls its command with the container path it is about,
// names from the container are text, and failures read as sentences.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import { tick } from 'svelte';
import type { FileEntry } from '../src/lib/types';

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
  return r ? r(args) : null;
});
vi.mock('@tauri-apps/api/core', () => ({
  invoke: (cmd: string, args?: Record<string, unknown>) => invoke(cmd, args),
  Channel: class {
    onmessage = () => {};
  },
}));
vi.mock('@tauri-apps/api/event', () => ({ listen: async () => () => {} }));

const Files = (await import('../src/views/Files.svelte')).default;
const Engine = (await import('../src/views/Engine.svelte')).default;
const { engine } = await import('../src/lib/engine.svelte');

const ID = 'c'.repeat(64);
const XSS = '<img src=x onerror="window.pwned=1">';
const settle = async () => {
  for (let i = 0; i < 6; i++) await tick();
  await new Promise((r) => setTimeout(r, 0));
  for (let i = 0; i < 3; i++) await tick();
};
const entry = (name: string, kind: FileEntry['kind'], size = 0, mode = 0o644, link = ''): FileEntry => ({
  name,
  kind,
  size,
  mode,
  link,
  mtime: 0,
});

/** The container's folders, as `list_files` answers them. */
const tree: Record<string, FileEntry[]> = {
  '/': [entry('etc', 'folder', 0, 0o755), entry('bin', 'link', 0, 0o777, 'usr/bin'), entry('filler', 'file', 8_000_000)],
  '/etc': [entry('ssl', 'folder', 0, 0o755), entry('hostname', 'file', 4), entry('motd', 'file', 12), entry(XSS, 'file', 1)],
  '/etc/ssl': [],
};
const rowNames = (c: HTMLElement) => [...c.querySelectorAll('tbody tr')].map((r) => (r as HTMLElement).dataset.name);

beforeEach(() => {
  invoke.mockClear();
  replies = {
    list_files: ({ path }) => {
      const p = String(path);
      if (p === '/bin') return { path: '/bin', folder: false, entries: [entry('bin', 'file', 10)] };
      if (!(p in tree)) throw { kind: 'NotFound', message: `could not find the file ${p} in the container` };
      return { path: p, folder: true, entries: tree[p] };
    },
  };
});
afterEach(() => cleanup());

describe('Files', () => {
  it('lists the root, enters a folder, and goes back by the breadcrumb and Up', async () => {
    const { container } = render(Files, { id: ID });
    await settle();
    expect(invoke).toHaveBeenCalledWith('list_files', { id: ID, path: '/' });
    expect(rowNames(container)).toEqual(['etc', 'bin', 'filler']);
    const etc = container.querySelector('tr[data-name="etc"]')!;
    expect([...etc.querySelectorAll('td')].map((td) => td.textContent!.trim()).slice(1, 4)).toEqual(['folder', '', 'drwxr-xr-x']);
    expect(container.querySelector('tr[data-name="filler"] td:nth-child(3)')!.textContent).toBe('8.0 MB');
    expect(container.querySelector('tr[data-name="bin"]')!.textContent).toContain('→ usr/bin');
    expect((container.querySelector('#files-up') as HTMLButtonElement).disabled).toBe(true);

    await fireEvent.click(screen.getByText('etc/'));
    await settle();
    expect(invoke).toHaveBeenCalledWith('list_files', { id: ID, path: '/etc' });
    expect(rowNames(container)).toEqual(['ssl', 'hostname', 'motd', XSS]);
    await fireEvent.click(screen.getByText('ssl/'));
    await settle();
    expect(container.querySelector('table')!.dataset.path).toBe('/etc/ssl');
    expect(container.querySelector('#files-empty')).not.toBeNull();
    expect([...container.querySelectorAll('#files-path .crumb')].map((b) => b.textContent)).toEqual(['/', 'etc', 'ssl']);

    await fireEvent.click(container.querySelector('#files-up')!);
    await settle();
    expect(container.querySelector('table')!.dataset.path).toBe('/etc');
    await fireEvent.click(container.querySelectorAll('#files-path .crumb')[0]);
    await settle();
    expect(container.querySelector('table')!.dataset.path).toBe('/');
  });

  it('shows names from the container as text, never as markup', async () => {
    const { container } = render(Files, { id: ID });
    await settle();
    await fireEvent.click(screen.getByText('etc/'));
    await settle();
    expect(screen.getByText(XSS).tagName).toBe('SPAN');
    expect(container.querySelector('img')).toBeNull();
  });

  it('says in a sentence when a folder cannot be read, and when a link is a file', async () => {
    replies.list_files = ({ path }) => {
      if (path === '/') return { path: '/', folder: true, entries: tree['/'] };
      throw { kind: 'NotFound', message: `could not find the file ${String(path)} in the container` };
    };
    const { container } = render(Files, { id: ID });
    await settle();
    await fireEvent.click(screen.getByText('etc/'));
    await settle();
    expect(screen.getByRole('alert').textContent).toBe('could not find the file /etc in the container');
    // The folder shown stays the one that was read.
    expect(container.querySelector('table')!.dataset.path).toBe('/');

    replies.list_files = ({ path }) =>
      path === '/bin' ? { path: '/bin', folder: false, entries: [entry('bin', 'file', 10)] } : { path: '/', folder: true, entries: tree['/'] };
    await fireEvent.click(screen.getByText('bin'));
    await settle();
    expect(container.querySelector('#files-notice')!.textContent).toBe('bin is a link to usr/bin, a file: download it, or edit usr/bin itself.');
    expect(container.querySelector('table')!.dataset.path).toBe('/');
  });

  it('edits a text file and saves it back', async () => {
    replies.read_text_file = ({ path }) => ({ path, text: 'hello\n', size: 6, mode: 0o644 });
    const { container } = render(Files, { id: ID });
    await settle();
    await fireEvent.click(screen.getByText('etc/'));
    await settle();
    await fireEvent.click(container.querySelector('tr[data-name="motd"] button.edit')!);
    await settle();
    expect(invoke).toHaveBeenCalledWith('read_text_file', { id: ID, path: '/etc/motd' });
    const editor = container.querySelector('#file-editor') as HTMLTextAreaElement;
    expect(editor.value).toBe('hello\n');
    expect((container.querySelector('#file-save') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.input(editor, { target: { value: 'hello, edited\n' } });
    expect((container.querySelector('#file-save') as HTMLButtonElement).disabled).toBe(false);
    await fireEvent.click(container.querySelector('#file-save')!);
    await settle();
    expect(invoke).toHaveBeenCalledWith('save_text_file', { id: ID, path: '/etc/motd', text: 'hello, edited\n' });
    expect(container.querySelector('#files-notice')!.textContent).toBe('Saved /etc/motd.');
    expect((container.querySelector('#file-save') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(container.querySelector('#file-close')!);
    expect(container.querySelector('#file-editor')).toBeNull();
    expect(container.querySelector('table')!.dataset.path).toBe('/etc');
  });

  it('keeps the editor open with the sentence when saving fails, and asks before discarding', async () => {
    replies.read_text_file = ({ path }) => ({ path, text: 'box\n', size: 4, mode: 0o644 });
    replies.save_text_file = () => {
      throw { kind: 'FailedPrecondition', message: '/etc/hostname cannot be written in the container: Device or resource busy' };
    };
    const { container } = render(Files, { id: ID });
    await settle();
    await fireEvent.click(screen.getByText('etc/'));
    await settle();
    await fireEvent.click(container.querySelector('tr[data-name="hostname"] button.edit')!);
    await settle();
    await fireEvent.input(container.querySelector('#file-editor')!, { target: { value: 'other\n' } });
    await fireEvent.click(container.querySelector('#file-save')!);
    await settle();
    expect(screen.getByRole('alert').textContent).toBe('/etc/hostname cannot be written in the container: Device or resource busy');
    await fireEvent.click(container.querySelector('#file-close')!);
    expect(container.querySelector('#file-editor')).not.toBeNull();
    await fireEvent.click(container.querySelector('#file-discard')!);
    expect(container.querySelector('#file-editor')).toBeNull();
  });

  it('shows the refusal of a file the editor cannot open', async () => {
    replies.read_text_file = () => {
      throw { kind: 'InvalidArgument', message: '/filler is not UTF-8 text; the editor opens text files only: download it instead' };
    };
    const { container } = render(Files, { id: ID });
    await settle();
    // Over 256 KiB: the editor is not offered.
    expect((container.querySelector('tr[data-name="filler"] button.edit') as HTMLButtonElement).disabled).toBe(true);
    replies.list_files = () => ({ path: '/', folder: true, entries: [entry('data.bin', 'file', 100)] });
    await fireEvent.click(container.querySelector('#files-refresh')!);
    await settle();
    await fireEvent.click(container.querySelector('tr[data-name="data.bin"] button.edit')!);
    await settle();
    expect(screen.getByRole('alert').textContent).toContain('is not UTF-8 text');
    expect(container.querySelector('#file-editor')).toBeNull();
  });

  it('downloads a file, or a folder as a tar, and uploads into the folder shown', async () => {
    replies.download_file = ({ path }) => `/home/me/Downloads/${String(path).split('/').pop()}`;
    replies.upload_file = () => 'notes.txt';
    const { container } = render(Files, { id: ID });
    await settle();
    await fireEvent.click(container.querySelector('tr[data-name="filler"] button.download')!);
    await settle();
    expect(invoke).toHaveBeenCalledWith('download_file', { id: ID, path: '/filler', folder: false });
    expect(container.querySelector('#files-notice')!.textContent).toBe('Saved filler to /home/me/Downloads/filler.');
    await fireEvent.click(container.querySelector('tr[data-name="etc"] button.download')!);
    await settle();
    expect(invoke).toHaveBeenCalledWith('download_file', { id: ID, path: '/etc', folder: true });

    await fireEvent.click(screen.getByText('etc/'));
    await settle();
    invoke.mockClear();
    await fireEvent.click(container.querySelector('#files-upload')!);
    await settle();
    expect(invoke).toHaveBeenCalledWith('upload_file', { id: ID, folder: '/etc' });
    // The folder is read again, so the new file shows.
    expect(invoke).toHaveBeenCalledWith('list_files', { id: ID, path: '/etc' });
    expect(container.querySelector('#files-notice')!.textContent).toBe('Uploaded notes.txt to /etc.');
  });

  it('says nothing when a dialog is cancelled', async () => {
    replies.download_file = () => null;
    replies.upload_file = () => null;
    const { container } = render(Files, { id: ID });
    await settle();
    await fireEvent.click(container.querySelector('tr[data-name="filler"] button.download')!);
    await fireEvent.click(container.querySelector('#files-upload')!);
    await settle();
    expect(container.querySelector('#files-notice')).toBeNull();
    expect(container.querySelector('#files-error')).toBeNull();
  });
});

describe('Engine disk usage', () => {
  const usage = [
    { kind: 'Images', count: 2, active: 1, size: 8_000_000, reclaimable: 2_000_000 },
    { kind: 'Containers', count: 3, active: 1, size: 1_000, reclaimable: 500 },
    { kind: 'Volumes', count: 0, active: 0, size: 0, reclaimable: 0 },
    { kind: 'Build cache', count: 1, active: 0, size: 64, reclaimable: 64 },
  ];

  beforeEach(() => {
    engine.status = 'connected';
    replies = {
      version: () => ({ version: '0.1.0', api_version: '1' }),
      info: () => ({}),
      vm_status: () => ({ phase: 'stopped', endpoint: '', backend: '', boot_ms: null, restarts: 0, cpus: 1, memory_mib: 512, dir: '/tmp/vm' }),
      disk_usage: () => usage,
    };
  });

  it('shows what each kind takes and what could be reclaimed', async () => {
    const { container } = render(Engine);
    await settle();
    const rows = [...container.querySelectorAll('#disk-usage tbody tr')].map((r) =>
      [...r.querySelectorAll('th, td')].map((c) => c.textContent),
    );
    expect(rows).toEqual([
      ['Images', '2', '1', '8.0 MB', '2.0 MB (25%)'],
      ['Containers', '3', '1', '1.0 kB', '500 B (50%)'],
      ['Volumes', '0', '0', '0 B', '0 B'],
      ['Build cache', '1', '0', '64 B', '64 B (100%)'],
    ]);
  });

  it('prunes only after the confirmation, then says what was reclaimed and refreshes', async () => {
    replies.prune = () => ({ containers: 2, images: 1, networks: 0, build_cache: 0, reclaimed: 2_000_500, sentence: 'Removed 2 stopped containers and 1 image, reclaiming 2.0 MB.' });
    const { container } = render(Engine);
    await settle();
    await fireEvent.click(container.querySelector('#prune')!);
    expect(invoke).not.toHaveBeenCalledWith('prune', expect.anything());
    expect(container.querySelector('#prune-confirm[open]')).not.toBeNull();
    invoke.mockClear();
    await fireEvent.click(container.querySelector('#prune-confirm-ok')!);
    await settle();
    expect(invoke).toHaveBeenCalledWith('prune', undefined);
    expect(invoke).toHaveBeenCalledWith('disk_usage', undefined);
    expect(container.querySelector('#pruned')!.textContent).toBe('Removed 2 stopped containers and 1 image, reclaiming 2.0 MB.');
    expect(container.querySelector('#prune-confirm')).toBeNull();
  });

  it('keeps the dialog open with the engine sentence when the prune fails', async () => {
    replies.prune = () => {
      throw { kind: 'Unavailable', message: 'the Berth engine is not reachable: start it with berth vm start' };
    };
    const { container } = render(Engine);
    await settle();
    await fireEvent.click(container.querySelector('#prune')!);
    await fireEvent.click(container.querySelector('#prune-confirm-ok')!);
    await settle();
    expect(container.querySelector('#prune-confirm-error')!.textContent).toBe('the Berth engine is not reachable: start it with berth vm start');
    expect(container.querySelector('#pruned')).toBeNull();
  });
});
