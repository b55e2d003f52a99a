// The app's commands, typed. Streams come over a Tauri Channel and stop
// with `stop_stream`; nothing here polls.
import { Channel, invoke } from '@tauri-apps/api/core';
import type {
  ActionResult,
  ContainerSummary,
  EngineEvent,
  HistoryStep,
  Editor,
  HostFolder,
  ImageSummary,
  Listing,
  LogLine,
  Msg,
  Network,
  Progress,
  Pruned,
  RunSpec,
  SettingsView,
  Settings,
  StatsSample,
  TermOut,
  TextFile,
  UiError,
  UsageRow,
  Volume,
  VmStatus,
} from './types';

/** The sentence of any failure a command reports. */
export function sentence(e: unknown): string {
  if (e && typeof e === 'object' && 'message' in e) return String((e as UiError).message);
  return String(e);
}

/** The kind of a failure (`Unavailable` when the agent cannot be reached). */
export function kindOf(e: unknown): string {
  if (e && typeof e === 'object' && 'kind' in e) return String((e as UiError).kind);
  return 'Internal';
}

/** What a stream's owner hears. */
export interface StreamHandlers<T> {
  item: (item: T) => void;
  end?: () => void;
  error?: (e: UiError) => void;
}

/** A running stream: stop it when its view goes away. */
export interface StreamHandle {
  stop: () => Promise<void>;
}

async function stream<T>(
  command: string,
  args: Record<string, unknown>,
  h: StreamHandlers<T>,
): Promise<StreamHandle & { id: number }> {
  const channel = new Channel<Msg<T>>();
  channel.onmessage = (m) => {
    if (m.type === 'item') h.item(m.item);
    else if (m.type === 'end') h.end?.();
    else h.error?.(m.error);
  };
  const id = await invoke<number>(command, { ...args, channel });
  return { id, stop: () => invoke('stop_stream', { id }) };
}

export const api = {
  connection: () => invoke<{ endpoint: string; source: string }>('connection'),
  version: () => invoke<Record<string, string>>('version'),
  info: () => invoke<Record<string, unknown>>('info'),
  containers: () => invoke<ContainerSummary[]>('list_containers'),
  action: (ids: string[], action: 'start' | 'stop' | 'restart' | 'remove') =>
    invoke<ActionResult[]>('container_action', { ids, action }),
  inspect: (id: string) => invoke<unknown>('inspect_container', { id }),
  images: () => invoke<ImageSummary[]>('list_images'),
  removeImage: (reference: string, force: boolean) => invoke<void>('remove_image', { reference, force }),
  volumes: () => invoke<Volume[]>('list_volumes'),
  networks: () => invoke<Network[]>('list_networks'),
  tagImage: (source: string, target: string) => invoke<void>('tag_image', { source, target }),
  history: (reference: string) => invoke<HistoryStep[]>('image_history', { reference }),
  inspectImage: (reference: string) => invoke<unknown>('inspect_image', { reference }),
  push: (reference: string, h: StreamHandlers<Progress>) => stream('push', { reference }, h),
  createVolume: (name: string, labels: string[]) => invoke<Volume>('create_volume', { name, labels }),
  removeVolume: (name: string) => invoke<void>('remove_volume', { name }),
  inspectVolume: (name: string) => invoke<unknown>('inspect_volume', { name }),
  createNetwork: (name: string, subnet: string, internal: boolean, labels: string[]) =>
    invoke<Network>('create_network', { name, subnet, internal, labels }),
  removeNetwork: (id: string) => invoke<void>('remove_network', { id }),
  inspectNetwork: (id: string) => invoke<unknown>('inspect_network', { id }),
  /** Asks where to save, then saves; the path, or null when cancelled. */
  saveLogs: (id: string, name: string, timestamps: boolean) =>
    invoke<string | null>('save_logs', { id, name, timestamps }),
  /** A container folder's entries (a link to a folder is followed). */
  listFiles: (id: string, path: string) => invoke<Listing>('list_files', { id, path }),
  /** A file of up to 256 KiB of UTF-8 text, for the editor. */
  readTextFile: (id: string, path: string) => invoke<TextFile>('read_text_file', { id, path }),
  saveTextFile: (id: string, path: string, text: string) => invoke<void>('save_text_file', { id, path, text }),
  /** Asks where to save (a folder as a tar), then saves; the host path, or null when cancelled. */
  downloadFile: (id: string, path: string, folder: boolean) =>
    invoke<string | null>('download_file', { id, path, folder }),
  /** Asks for a host file, then copies it into `folder`; its name, or null when cancelled. */
  uploadFile: (id: string, folder: string) => invoke<string | null>('upload_file', { id, folder }),
  /** A volume's files, through the app's helper container (paths are the volume's own). */
  listVolumeFiles: (name: string, path: string) => invoke<Listing>('list_volume_files', { name, path }),
  readVolumeFile: (name: string, path: string) => invoke<TextFile>('read_volume_file', { name, path }),
  saveVolumeFile: (name: string, path: string, text: string) => invoke<void>('save_volume_file', { name, path, text }),
  downloadVolumeFile: (name: string, path: string, folder: boolean) =>
    invoke<string | null>('download_volume_file', { name, path, folder }),
  uploadVolumeFile: (name: string, folder: string) => invoke<string | null>('upload_volume_file', { name, folder }),
  /** The browser is closed: the helper container goes. */
  closeVolume: (name: string) => invoke<void>('close_volume', { name }),
  /** Bind mounts and the VM's shared folders. */
  hostFolders: () => invoke<HostFolder[]>('host_folders'),
  /** Opens one of `hostFolders` with the system's opener (checked again in the app). */
  openHostFolder: (path: string) => invoke<void>('open_host_folder', { path }),
  /** The code editor "Open in editor" uses (BERTH_EDITOR, else VS Code, Zed…). */
  editor: () => invoke<Editor>('editor'),
  /** Opens one of `hostFolders` in that editor; answers the editor's name. */
  openInEditor: (path: string) => invoke<string>('open_in_editor', { path }),
  diskUsage: () => invoke<UsageRow[]>('disk_usage'),
  /** Removes stopped containers, dangling images, unused networks and the build cache. */
  prune: () => invoke<Pruned>('prune'),
  settings: () => invoke<SettingsView>('get_settings'),
  saveSettings: (settings: Settings) => invoke<void>('save_settings', { settings }),
  useEndpoint: (url: string) => invoke<void>('use_endpoint', { url }),
  /** The first list is painted; whether the app logs its timings. */
  painted: (count: number) => invoke<boolean>('painted', { count }),
  /** A list with container events in it is painted (only with timings on). */
  changePainted: (afterEvent: number, afterHeard: number, count: number, what: string) =>
    invoke<void>('change_painted', { afterEvent, afterHeard, count, what }),
  openPort: (port: number) => invoke<void>('open_port', { port }),
  run: (spec: RunSpec) => invoke<string>('run_container', { spec }),
  events: (h: StreamHandlers<EngineEvent>) => stream('events', {}, h),
  pull: (reference: string, h: StreamHandlers<Progress>) => stream('pull', { reference }, h),
  logs: (id: string, follow: boolean, h: StreamHandlers<LogLine>) => stream('logs', { id, follow }, h),
  /** A running container's resource use, a sample a second, in batches:
   * with `every` > 1 the first alone, then each `every` seconds' together
   * at the clock's multiples of `every` (see src-tauri/src/streams.rs). */
  stats: (id: string, every: number, h: StreamHandlers<StatsSample[]>) => stream('stats', { id, every }, h),
  /** Tells the tray icon whether the engine answers and how many containers run. */
  trayStatus: (connected: boolean, running: number) => invoke<string>('tray_status', { connected, running }),
  vmStatus: () => invoke<VmStatus>('vm_status'),
  /** Boots the VM; `step` hears each sentence of its progress. */
  vmStart: (step: (line: string) => void) => {
    const channel = new Channel<string>();
    channel.onmessage = step;
    return invoke<VmStatus>('vm_start', { channel });
  },
  vmStop: () => invoke<VmStatus>('vm_stop'),
  vmConsole: () => invoke<string>('vm_console', {}),
  /** The system's folder dialog; the folder, or null when cancelled. */
  pickFolder: () => invoke<string | null>('pick_folder'),
  terminal: (id: string, rows: number, cols: number, h: StreamHandlers<TermOut>) =>
    stream('terminal', { id, rows, cols }, h),
  terminalInput: (id: number, data: string) => invoke<void>('terminal_input', { id, data }),
  terminalResize: (id: number, rows: number, cols: number) =>
    invoke<void>('terminal_resize', { id, rows, cols }),
};
