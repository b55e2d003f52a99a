// The shapes the app's commands return: berth-client's serde forms of the
// berth.v1 messages (snake_case fields, RFC 3339 times).

export interface UiError {
  kind: string;
  message: string;
}

export interface PortBinding {
  host_ip: string;
  host_port: number;
  container_port: number;
  protocol: string;
}

export interface ContainerSummary {
  id: string;
  names: string[];
  image: string;
  image_id: string;
  command: string;
  created: string | null;
  state: string;
  status: string;
  ports: PortBinding[];
  labels: Record<string, string>;
}

export interface ImageSummary {
  id: string;
  repo_tags: string[];
  repo_digests: string[];
  created: string | null;
  size: number;
  containers: number;
}

export interface Volume {
  name: string;
  driver: string;
  mountpoint: string;
}

export interface Network {
  id: string;
  name: string;
  driver: string;
}

export interface EngineEvent {
  type: string;
  action: string;
  id: string;
  attributes: Record<string, string>;
  /** When the engine sent it (RFC 3339). */
  time?: string | null;
}

export type Progress =
  | { kind: 'layer'; id: string; status: string; current: number; total: number }
  | { kind: 'pulled'; [k: string]: unknown }
  | { kind: 'pushed'; [k: string]: unknown };

export interface LogLine {
  stream: 'stdout' | 'stderr' | string;
  text: string;
  time: string | null;
}

export type TermOut =
  | { kind: 'data'; data: number[] }
  | { kind: 'exit'; code: number }
  | { kind: 'shell'; shell: string };

export type Msg<T> = { type: 'item'; item: T } | { type: 'end' } | { type: 'error'; error: UiError };

export interface ActionResult {
  id: string;
  error: UiError | null;
}

export interface RunSpec {
  name: string;
  image: string;
  ports: { host: number; container: number; protocol: string }[];
  env: string[];
  volumes: { source: string; target: string }[];
  cmd: string[];
}

export interface HistoryStep {
  created_by: string;
  created: string | null;
  size: number;
  empty_layer: boolean;
  comment: string;
}

export interface SavedEndpoint {
  name: string;
  url: string;
}

export interface Settings {
  stop_engine_on_quit: boolean;
  endpoints: SavedEndpoint[];
  /** The endpoint in use; empty: BERTH_HOST, else discovery. */
  endpoint: string;
}

export interface SettingsView {
  settings: Settings;
  file: string;
  vm_running: boolean;
}

export interface StatsSample {
  id: string;
  name: string;
  time: string | null;
  cpu_percent: number;
  memory_usage: number;
  memory_limit: number;
  pids: number;
  block_read: number;
  block_write: number;
  net_rx: number;
  net_tx: number;
}

export interface VmStatus {
  phase: string;
  endpoint: string;
  backend: string;
  boot_ms: number | null;
  restarts: number;
  cpus: number;
  memory_mib: number;
  dir: string;
}

/** One entry of a container's folder (the Files tab). */
export interface FileEntry {
  name: string;
  kind: 'folder' | 'file' | 'link' | 'other';
  size: number;
  /** Permission bits (0o7777). */
  mode: number;
  /** A link's target. */
  link: string;
  /** Seconds since 1970. */
  mtime: number;
}

/** A folder's entries; for a path that is a file, that file alone (`folder: false`). */
export interface Listing {
  path: string;
  folder: boolean;
  entries: FileEntry[];
}

/** A small text file as the editor opens it. */
export interface TextFile {
  path: string;
  text: string;
  size: number;
  mode: number;
}

/** One row of the Engine view's disk usage table. */
export interface UsageRow {
  kind: string;
  count: number;
  active: number;
  size: number;
  reclaimable: number;
}

/** What a prune removed, and the sentence saying so. */
export interface Pruned {
  containers: number;
  images: number;
  networks: number;
  build_cache: number;
  reclaimed: number;
  sentence: string;
}

/** A host folder the Volumes view can open: a bind mount or a shared folder. */
export interface HostFolder {
  path: string;
  kind: 'bind' | 'shared';
  /** The containers that mount it, by name. */
  containers: string[];
  /** Whether it is a folder on this computer. */
  here: boolean;
}

/** The user's code editor, as the app found it. */
export interface Editor {
  /** What the button says: "VS Code", or BERTH_EDITOR's command. */
  name: string;
  program: string;
}
