// What the end-to-end test runs against: a network namespace of its own
// holding a local registry (with a busybox image built offline) and a
// real berth-agent, which the app reaches through its Unix socket.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, symlinkSync, writeFileSync, existsSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...opts }).toString();

export class Fixture {
  constructor(agentBin) {
    this.agentBin = agentBin;
    this.dir = mkdtempSync(join(tmpdir(), 'berth-desktop-e2e-'));
    this.ns = `berth-desk-${process.pid}`;
    this.socket = join(this.dir, 'agent.sock');
    this.port = 5000 + (process.pid % 1000);
    sh('ip', ['netns', 'add', this.ns]);
    sh('ip', ['-n', this.ns, 'link', 'set', 'lo', 'up']);
  }

  /** `nsenter` into the namespace's network only (`ip netns exec` would
   * also remount /sys, hiding the cgroup mounts from the agent). */
  nsArgs(cmd, args) {
    return [`--net=/var/run/netns/${this.ns}`, cmd, ...args];
  }

  /** A command inside the namespace. */
  inNs(cmd, args) {
    return sh('nsenter', this.nsArgs(cmd, args));
  }

  async startRegistry() {
    const config = join(this.dir, 'registry.yml');
    writeFileSync(
      config,
      `version: 0.1\nlog: { level: error }\nstorage: { filesystem: { rootdirectory: ${this.dir}/registry }, delete: { enabled: true } }\nhttp: { addr: "127.0.0.1:${this.port}" }\n`,
    );
    this.registry = spawn('nsenter', this.nsArgs('docker-registry', ['serve', config]), { stdio: 'ignore' });
    for (let i = 0; ; i++) {
      try {
        this.inNs('curl', ['-sf', `http://127.0.0.1:${this.port}/v2/`]);
        return;
      } catch {
        if (i > 100) throw new Error('the registry did not start');
        await sleep(100);
      }
    }
  }

  /** Builds a busybox image (with 8 MB of random bytes, so a pull takes a
   * few progress steps) and pushes it as `bb:latest`; returns its name. */
  pushBusybox() {
    const layout = join(this.dir, 'oci');
    const bundle = join(this.dir, 'bundle');
    sh('umoci', ['init', '--layout', layout]);
    sh('umoci', ['new', '--image', `${layout}:latest`]);
    sh('umoci', ['unpack', '--image', `${layout}:latest`, bundle]);
    const root = join(bundle, 'rootfs');
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'tmp', 'www']) mkdirSync(join(root, d), { recursive: true });
    copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
    for (const applet of sh('/bin/busybox', ['--list-full']).split('\n').filter(Boolean)) {
      const p = join(root, applet);
      if (!existsSync(p)) symlinkSync('/bin/busybox', p);
    }
    sh('dd', ['if=/dev/urandom', `of=${join(root, 'filler')}`, 'bs=1M', 'count=8', 'status=none']);
    sh('umoci', ['repack', '--image', `${layout}:latest`, bundle]);
    sh('umoci', ['config', '--image', `${layout}:latest`, '--config.cmd', 'sh']);
    const name = `127.0.0.1:${this.port}/bb:latest`;
    this.inNs('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${name}`]);
    return name;
  }

  async startAgent() {
    this.agent = spawn(
      'nsenter',
      this.nsArgs(this.agentBin, ['--root', join(this.dir, 'root'), '--listen', `unix://${this.socket}`]),
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    for (let i = 0; !existsSync(this.socket); i++) {
      if (i > 300) throw new Error('berth-agent did not start');
      await sleep(50);
    }
  }

  async stopAgent() {
    const a = this.agent;
    this.agent = null;
    if (!a || a.exitCode !== null) return;
    const done = new Promise((r) => a.once('exit', r));
    a.kill('SIGTERM');
    await done;
    rmSync(this.socket, { force: true });
  }

  /** A host folder for a bind mount, holding `index.html`. */
  site(text) {
    const d = join(this.dir, 'site');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'index.html'), text);
    return d;
  }

  /** Removes every container the agent holds (best effort: a failed
   * test may leave some running). */
  removeAll() {
    const berth = join(dirname(this.agentBin), 'berth');
    const env = { ...process.env, BERTH_HOST: `unix://${this.socket}` };
    try {
      const ids = sh(berth, ['ps', '-aq'], { env }).split('\n').filter(Boolean);
      if (ids.length) sh(berth, ['rm', '-f', ...ids], { env });
    } catch (e) {
      console.error(`cannot remove the test's containers: ${e}`);
    }
  }

  async close() {
    if (this.agent) this.removeAll();
    await this.stopAgent().catch(() => {});
    this.registry?.kill('SIGTERM');
    try {
      sh('ip', ['netns', 'del', this.ns]);
    } catch {
      /* already gone */
    }
    // Whatever the agent left mounted (a container the test did not remove).
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1])
      .filter((m) => m && m.startsWith(this.dir))
      .reverse();
    for (const m of mounts) {
      try {
        sh('umount', ['-l', m]);
      } catch {
        /* already gone */
      }
    }
    try {
      rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      console.error(`cannot remove ${this.dir}: ${e}`);
    }
  }
}
