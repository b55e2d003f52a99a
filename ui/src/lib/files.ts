// Where the Files browser reads and writes: a container's filesystem, or
// a volume's files (which the app reaches through a helper container of
// its own; the page names only the volume). Host paths are chosen in the
// system's dialogs, in Rust, never here.
import { api } from './api';
import type { Listing, TextFile } from './types';

export interface FileSource {
  /** Changes when the browser should start again at `/`. */
  key: string;
  list: (path: string) => Promise<Listing>;
  read: (path: string) => Promise<TextFile>;
  save: (path: string, text: string) => Promise<void>;
  /** Asks where to save (a folder as a tar); the host path, or null. */
  download: (path: string, folder: boolean) => Promise<string | null>;
  /** Asks for a host file and copies it into `folder`; its name, or null. */
  upload: (folder: string) => Promise<string | null>;
}

export function containerFiles(id: string): FileSource {
  return {
    key: `container:${id}`,
    list: (path) => api.listFiles(id, path),
    read: (path) => api.readTextFile(id, path),
    save: (path, text) => api.saveTextFile(id, path, text),
    download: (path, folder) => api.downloadFile(id, path, folder),
    upload: (folder) => api.uploadFile(id, folder),
  };
}

export function volumeFiles(name: string): FileSource {
  return {
    key: `volume:${name}`,
    list: (path) => api.listVolumeFiles(name, path),
    read: (path) => api.readVolumeFile(name, path),
    save: (path, text) => api.saveVolumeFile(name, path, text),
    download: (path, folder) => api.downloadVolumeFile(name, path, folder),
    upload: (folder) => api.uploadVolumeFile(name, folder),
  };
}
