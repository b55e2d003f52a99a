// Component tests of the Volumes view's file browser and host folders,
// with the app's commands mocked: the browser is the Files tab over the
// volume commands (the page names the volume and a path in it, never a
// container), its helper is let go when the browser closes, names are
// text, and a host folder is opened by the app only through its command.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import { tick } from 'svelte';
import type { FileEntry, HostFolder } from '../src/lib/types';

HTMLDialogElement.prototype.showModal = function (this: HTMLDialogElement) {
  this.open = true;
};
HTMLDialogElement.prototype.close = function (this: HTMLDialogElement) {
  this.open = false;
  this.dispatchEvent(new Event('close'));
};

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

const { engine } = await import('../src/lib/engine.svelte');
const Volumes = (await import('../src/views/Volumes.svelte')).default;

const XSS = '<img src=x onerror="window.pwned=1">';
const settle = async () => {
  for (let i = 0; i < 6; i++) await tick();
  await new Promise((r) => setTimeout(r, 0));
  for (let i = 0; i < 3; i++) await tick();
};
const entry = (name: string, kind: FileEntry['kind'], size = 0): FileEntry => ({
  name, kind, size, mode: kind === 'folder' ? 0o755 : 0o644, link: '', mtime: 0,
});
const tree: Record<string, FileEntry[]> = {
  '/': [entry('conf', 'folder'), entry('notes.txt', 'file', 6), entry(XSS, 'file', 1)],
  '/conf': [entry('app.ini', 'file', 10)],
};
const folders: HostFolder[] = [
  { path: '/home/me/site', kind: 'bind', containers: ['web', 'api'], here: true },
  { path: '/srv/remote', kind: 'bind', containers: ['db'], here: false },
  { path: '/home/me', kind: 'shared', containers: [], here: true },
];
const calls = (cmd: string) => invoke.mock.calls.filter(([c]) => c === cmd).map(([, a]) => a);

beforeEach(() => {
  invoke.mockClear();
  replies = {
    list_volumes: () => engine.volumes,
    list_volume_files: ({ path }) => {
      const p = String(path);
      if (!(p in tree)) throw { kind: 'NotFound', message: `could not find the file ${p} in the volume` };
      return { path: p, folder: true, entries: tree[p] };
    },
    read_volume_file: ({ path }) => ({ path, text: 'hello\n', size: 6, mode: 0o644 }),
    download_volume_file: () => '/home/me/Downloads/notes.txt',
    upload_volume_file: () => 'photo.png',
    host_folders: () => folders,
  };
  engine.firstList = true;
  engine.containers = [];
  engine.volumes = [
    { name: 'data', driver: 'local', mountpoint: '/var/lib/berth/volumes/data' },
    { name: 'cache', driver: 'local', mountpoint: '/var/lib/berth/volumes/cache' },
  ];
});
afterEach(() => cleanup());

describe('a volume’s files', () => {
  it('browses a volume through the volume commands, and lets its helper go on close', async () => {
    const { container } = render(Volumes);
    await fireEvent.click(container.querySelector('tr[data-name="data"] .browse')!);
    await settle();
    expect(calls('list_volume_files')).toEqual([{ name: 'data', path: '/' }]);
    const names = [...container.querySelectorAll('#files tbody tr')].map((r) => (r as HTMLElement).dataset.name);
    expect(names).toEqual(['conf', 'notes.txt', XSS]);
    // A name from the volume is text.
    expect(screen.getByText(XSS).tagName).toBe('SPAN');
    expect(container.querySelector('img')).toBeNull();
    // No container command is used for a volume.
    expect(invoke.mock.calls.some(([c]) => ['list_files', 'read_text_file', 'download_file'].includes(c))).toBe(false);

    await fireEvent.click(screen.getByText('conf/'));
    await settle();
    expect(calls('list_volume_files').pop()).toEqual({ name: 'data', path: '/conf' });
    expect(container.querySelector('#files table')!.getAttribute('data-path')).toBe('/conf');

    // Another volume starts at its root, and the first one's helper goes.
    await fireEvent.click(container.querySelector('tr[data-name="cache"] .browse')!);
    await settle();
    expect(calls('close_volume')).toEqual([{ name: 'data' }]);
    expect(calls('list_volume_files').pop()).toEqual({ name: 'cache', path: '/' });
    expect(container.querySelector('#volume-files')!.getAttribute('data-volume')).toBe('cache');

    await fireEvent.click(container.querySelector('#volume-files-close')!);
    await settle();
    expect(container.querySelector('#volume-files')).toBeNull();
    expect(calls('close_volume')).toEqual([{ name: 'data' }, { name: 'cache' }]);
  });

  it('edits, saves, downloads and uploads with the volume’s own paths', async () => {
    const { container } = render(Volumes);
    await fireEvent.click(container.querySelector('tr[data-name="data"] .browse')!);
    await settle();
    await fireEvent.click(container.querySelector('tr[data-name="notes.txt"] .download')!);
    await settle();
    expect(calls('download_volume_file')).toEqual([{ name: 'data', path: '/notes.txt', folder: false }]);
    expect(screen.getByText('Saved notes.txt to /home/me/Downloads/notes.txt.')).toBeTruthy();
    await fireEvent.click(container.querySelector('tr[data-name="conf"] .download')!);
    await settle();
    expect(calls('download_volume_file').pop()).toEqual({ name: 'data', path: '/conf', folder: true });

    await fireEvent.click(container.querySelector('#files-upload')!);
    await settle();
    expect(calls('upload_volume_file')).toEqual([{ name: 'data', folder: '/' }]);
    expect(screen.getByText('Uploaded photo.png to /.')).toBeTruthy();

    await fireEvent.click(container.querySelector('tr[data-name="notes.txt"] .edit')!);
    await settle();
    expect(calls('read_volume_file')).toEqual([{ name: 'data', path: '/notes.txt' }]);
    const editor = container.querySelector('#file-editor') as HTMLTextAreaElement;
    expect(editor.value).toBe('hello\n');
    await fireEvent.input(editor, { target: { value: 'hello, volume\n' } });
    await fireEvent.click(container.querySelector('#file-save')!);
    await settle();
    expect(calls('save_volume_file')).toEqual([{ name: 'data', path: '/notes.txt', text: 'hello, volume\n' }]);
  });

  it('says in a sentence when a volume cannot be browsed', async () => {
    const why = 'browsing a volume needs an image on the engine (any one, it is never run): pull one in Images first';
    replies.list_volume_files = () => {
      throw { kind: 'FailedPrecondition', message: why };
    };
    const { container } = render(Volumes);
    await fireEvent.click(container.querySelector('tr[data-name="data"] .browse')!);
    await settle();
    expect(container.querySelector('#files-error')!.textContent).toBe(why);
  });

  it('closes the browser of a volume that is removed', async () => {
    const { container } = render(Volumes);
    await fireEvent.click(container.querySelector('tr[data-name="data"] .browse')!);
    await settle();
    await fireEvent.click(container.querySelector('tr[data-name="data"] .remove')!);
    await fireEvent.click(document.querySelector('#remove-volume-ok')!);
    await settle();
    expect(calls('remove_volume')).toEqual([{ name: 'data' }]);
    expect(container.querySelector('#volume-files')).toBeNull();
  });
});

describe('host folders', () => {
  it('lists bind mounts and shared folders, and opens one only through the app', async () => {
    const { container } = render(Volumes);
    await settle();
    const rows = [...container.querySelectorAll('#host-folders tbody tr')] as HTMLElement[];
    expect(rows.map((r) => [r.dataset.path, r.dataset.kind])).toEqual([
      ['/home/me/site', 'bind'],
      ['/srv/remote', 'bind'],
      ['/home/me', 'shared'],
    ]);
    expect(rows[0].textContent).toContain('web, api');
    const remote = rows[1].querySelector('.open-folder') as HTMLButtonElement;
    expect(remote.disabled).toBe(true);
    expect(remote.title).toBe('This folder is not on this computer');

    await fireEvent.click(rows[0].querySelector('.open-folder')!);
    await settle();
    expect(calls('open_host_folder')).toEqual([{ path: '/home/me/site' }]);
    expect(container.querySelector('#host-folders-notice')!.textContent).toBe('Opened /home/me/site.');

    const why = '/home/me is not a bind mount or shared folder of this engine';
    replies.open_host_folder = () => {
      throw { kind: 'InvalidArgument', message: why };
    };
    await fireEvent.click(rows[2].querySelector('.open-folder')!);
    await settle();
    expect(container.querySelector('#host-folders-error')!.textContent).toBe(why);
  });

  it('opens a folder in the code editor the app found, named on the button', async () => {
    replies.editor = () => ({ name: 'Zed', program: '/usr/bin/zed' });
    replies.open_in_editor = () => 'Zed';
    const { container } = render(Volumes);
    await settle();
    const rows = [...container.querySelectorAll('#host-folders tbody tr')] as HTMLElement[];
    const button = rows[0].querySelector('.open-editor') as HTMLButtonElement;
    expect(button.textContent).toBe('Open in Zed');
    expect((rows[1].querySelector('.open-editor') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(button);
    await settle();
    expect(calls('open_in_editor')).toEqual([{ path: '/home/me/site' }]);
    expect(container.querySelector('#host-folders-notice')!.textContent).toBe('Opened /home/me/site in Zed.');

    // No editor on this machine: the button stays, and says why when pressed.
    cleanup();
    const none = 'No code editor found: install VS Code, VSCodium, Cursor, Zed or Sublime Text (with its command on PATH), or set BERTH_EDITOR to your editor\'s command; Open folder shows it in the file manager';
    replies.editor = () => {
      throw { kind: 'NotFound', message: none };
    };
    replies.open_in_editor = replies.editor;
    const again = render(Volumes).container;
    await settle();
    const plain = again.querySelector('#host-folders tbody tr .open-editor') as HTMLButtonElement;
    expect(plain.textContent).toBe('Open in editor');
    await fireEvent.click(plain);
    await settle();
    expect(again.querySelector('#host-folders-error')!.textContent).toBe(none);
  });

  it('asks again when the containers change, and says when there are none', async () => {
    replies.host_folders = () => [];
    const { container } = render(Volumes);
    await settle();
    expect(container.querySelector('#no-host-folders')).not.toBeNull();
    expect(calls('host_folders')).toHaveLength(1);
    replies.host_folders = () => folders;
    engine.containers = [];
    await settle();
    expect(calls('host_folders')).toHaveLength(2);
    expect(container.querySelectorAll('#host-folders tbody tr')).toHaveLength(3);
  });
});
