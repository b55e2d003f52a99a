// The real app end to end: Berth Desktop under Xvfb, driven through
// tauri-driver and WebKitWebDriver, against a real berth-agent and a
// local registry (see fixture.mjs). Run by `npm run e2e` under xvfb-run
// (scripts/test.sh); it saves a screenshot of each view under
// target/e2e-screenshots/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fixture } from './fixture.mjs';
import { Session, startDriver } from './webdriver.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const target = process.env.CARGO_TARGET_DIR ?? join(repo, 'target');
const appBin = process.env.BERTH_DESKTOP_BIN ?? join(target, 'debug/berth-desktop');
const agentBin = process.env.BERTH_AGENT_BIN ?? join(target, 'debug/berth-agent');
const shots = join(repo, 'target/e2e-screenshots');
const berthBin = join(dirname(appBin), 'berth');
// The guest image the VM test boots (scripts/build-vm-image.sh).
const vmImage = process.env.BERTH_VM_IMAGE ?? join(target, 'vm-image');
const driverPort = 4444 + (process.pid % 500) * 2;

let fx, driver, s, image, vmDir;

// The screen as X shows it (ImageMagick's import): WebKitWebDriver's own
// screenshot waits for a composited frame, and the app paints without
// compositing (src-tauri/src/webkit.rs), so only its first one returns.
async function shot(name) {
  mkdirSync(shots, { recursive: true });
  await new Promise((r) => setTimeout(r, 150)); // the last change painted
  execFileSync('import', ['-window', 'root', join(shots, `${name}.png`)]);
}

const rowState = (name) =>
  s.exec('const r = document.querySelector(`tr[data-name="${arguments[0]}"]`); return r ? r.dataset.state : null;', name);

before(async () => {
  if (!process.env.DISPLAY) throw new Error('no DISPLAY: run under xvfb-run -a');
  fx = new Fixture(agentBin);
  await fx.startRegistry();
  image = fx.pushBusybox();
  await fx.startAgent();
  // The VM the app starts lives in the fixture's folder: a small one, no
  // shared folders, under TCG.
  vmDir = join(fx.dir, 'vm');
  mkdirSync(vmDir, { recursive: true });
  writeFileSync(
    join(vmDir, 'settings.json'),
    JSON.stringify({ cpus: 1, memory_mib: 1024, disk_size: 4 << 30, shares: [], image: vmImage, accel: 'tcg', network: { mode: 'nat' }, agent_port: 1024 }),
  );
  // The app's settings go to the fixture's folder, not the user's.
  driver = await startDriver(driverPort, {
    BERTH_HOST: `unix://${fx.socket}`,
    XDG_CONFIG_HOME: join(fx.dir, 'config'),
    BERTH_VM_DIR: vmDir,
  });
  s = await Session.create(driverPort, appBin);
});

after(async () => {
  if (vmDir) {
    try {
      execFileSync(berthBin, ['vm', 'stop', '--dir', vmDir], { stdio: 'ignore', timeout: 90000 });
    } catch {
      // Nothing was running, or it is reported by the VM test.
    }
  }
  await s?.quit();
  driver?.kill('SIGTERM');
  await fx?.close();
});

test('connects and shows the empty containers view', async () => {
  await s.until(async () => (await s.text('#status-text'))?.startsWith('Connected to'), 'the connection');
  await s.waitFor('#no-containers');
  await shot('containers-empty');
});

test('pulls an image with per-layer progress bars that move', async () => {
  await s.click('#nav-images');
  await s.type('#pull-ref', image);
  await s.click('#pull');
  // Every value each layer's bar showed, read while the pull runs.
  const seen = new Map();
  await s.until(async () => {
    const v = await s.exec(
      'return [document.querySelector("#pull-progress")?.dataset.state, [...document.querySelectorAll("[data-layer]")].map(l => [l.dataset.layer, l.querySelector("progress").value, +l.dataset.updates])];',
    );
    for (const [id, value, updates] of v[1]) {
      const st = seen.get(id) ?? { values: new Set(), updates: 0 };
      st.values.add(value);
      st.updates = Math.max(st.updates, updates);
      seen.set(id, st);
    }
    return v[0] === 'done' || v[0] === 'failed' ? v[0] : null;
  }, 'the pull to finish', 60000);
  assert.equal(await s.exec('return document.querySelector("#pull-progress").dataset.state'), 'done', await s.text('#pull-message'));
  const moved = [...seen.values()].some((l) => l.updates >= 2 || l.values.size >= 2);
  assert.ok(moved, `a layer's bar moved: ${JSON.stringify([...seen].map(([k, v]) => [k, [...v.values], v.updates]))}`);
  await s.waitFor(`tr[data-tags~="${image}"]`);
  await shot('images');
});

async function runFromDialog({ name, ports = '', volumes = '', cmd, screenshot = false }) {
  await s.click('#nav-images');
  await s.click(`tr[data-tags~="${image}"] button.run`);
  await s.waitFor('#run-dialog[open]');
  await s.type('#run-name', name);
  if (ports) await s.type('#run-ports', ports);
  if (volumes) await s.type('#run-volumes', volumes);
  await s.type('#run-cmd', cmd);
  if (screenshot) await shot('run-dialog');
  await s.click('#run-submit');
  await s.until(async () => !(await s.exec('return !!document.querySelector("#run-dialog")')), `the dialog for ${name} to close`, 30000)
    .catch(async (e) => assert.fail(`${e.message}: ${await s.text('#run-error')}`));
}

test('runs containers from the Run dialog; they appear in the list live', async () => {
  const site = fx.site('hello from a host folder\n');
  await runFromDialog({ name: 'web', ports: '8080:80', volumes: `${site}:/www`, cmd: 'httpd -f -p 80 -h /www', screenshot: true });
  await runFromDialog({
    name: 'talker',
    cmd: `sh -c 'echo line one; echo needle-42; echo "<img src=x onerror=alert(1)>"; sleep 3600'`,
  });
  await s.click('#nav-containers');
  await s.until(async () => (await rowState('web')) === 'running' && (await rowState('talker')) === 'running', 'both running');
  assert.match(await s.text('tr[data-name="web"]'), /8080→80\/tcp/);
  // The published port serves the host folder (inside the agent's namespace).
  const body = await s.until(() => {
    try {
      return fx.inNs('curl', ['-sf', 'http://127.0.0.1:8080/index.html']);
    } catch {
      return null;
    }
  }, 'the published port');
  assert.equal(body, 'hello from a host folder\n');
  await shot('containers');
});

test('logs are text and searchable', async () => {
  await s.click('tr[data-name="talker"] .cname');
  await s.waitFor('#logs');
  await s.until(async () => (await s.text('#logs'))?.includes('needle-42'), 'the log lines');
  await s.type('#log-search', 'needle');
  await s.until(async () => (await s.exec('return document.querySelectorAll("#logs .line").length')) === 1, 'one line');
  assert.equal(await s.text('#logs mark'), 'needle');
  await s.type('#log-search', 'onerror');
  await s.until(async () => (await s.text('#logs'))?.includes('<img src=x onerror=alert(1)>'), 'the HTML line as text');
  assert.equal(await s.exec('return document.querySelectorAll("#logs img").length'), 0);
  await shot('logs');
});

test('inspect shows the container document', async () => {
  await s.click('#tab-inspect');
  await s.until(async () => (await s.text('#inspect'))?.includes('"Name"'), 'the inspect document');
});

test('a command typed into the terminal is answered', async () => {
  await s.click('#tab-terminal');
  await s.until(async () => (await s.text('#terminal-status'))?.includes('in the container'), 'the shell').catch(async (e) =>
    assert.fail(`${e.message}: ${await s.text('#terminal-status')}`),
  );
  await s.click('#terminal');
  const rows = () => s.text('#terminal .xterm-rows');
  // The prompt first, so the keys reach a shell that reads them.
  await s.until(async () => /[#$] $/m.test((await rows()) ?? ''), 'the prompt').catch(() => {});
  await s.type('.xterm-helper-textarea', 'echo $((6*7))-ok', false);
  await s.until(async () => (await rows())?.includes('echo $((6*7))-ok'), 'the echo of the keys').catch(async (e) =>
    assert.fail(`${e.message}: ${await rows()}`),
  );
  await s.type('.xterm-helper-textarea', '\uE007', false);
  await s.until(async () => (await rows())?.includes('42-ok'), 'the answer', 15000).catch(async (e) =>
    assert.fail(`${e.message}: ${await rows()}`),
  );
  await shot('terminal');
});

test('a running container shows its CPU and memory in the list, and the detail charts draw', async () => {
  // The list: a value and a sparkline in each column of a running row.
  const cell = (col) => s.text(`tr[data-name="talker"] td.${col}`);
  await s.until(async () => /\d+(\.\d)?%/.test((await cell('cpu')) ?? ''), 'the CPU column', 20000);
  await s.until(async () => /\d(\.\d)? (B|KiB|MiB)/.test((await cell('mem')) ?? ''), 'the memory column');
  // Two samples make a line.
  await s.until(
    async () => (await s.exec('return document.querySelector(`tr[data-name="talker"] td.mem polyline`)?.getAttribute("points") ?? ""')).split(' ').length >= 2,
    'the memory sparkline',
    20000,
  );
  await s.exec(`window.__errors = []; addEventListener('error', (e) => __errors.push(e.message));
    addEventListener('unhandledrejection', (e) => __errors.push(String(e.reason)));`);
  await s.click('#tab-stats');
  await s.until(() => s.exec('return !!document.querySelector("#stats-charts canvas")'), 'the charts').catch(async (e) =>
    assert.fail(`${e.message}: ${await s.exec('return document.querySelector("#detail")?.innerHTML')} ${await s.exec('return window.__errors ?? ""')}`),
  );
  await s.until(async () => /(B|KiB|MiB) of /.test((await s.text('#stats-mem')) ?? ''), 'the memory figure with its limit');
  // The memory chart has painted its line: pixels of the series' colour.
  const painted = () =>
    s.exec(`const c = document.querySelector('.chart[data-kind="mem"] canvas');
      if (!c || !c.width) return 0;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i + 1] > d[i] + 40 && d[i + 1] > d[i + 2] + 20) n++;
      return n;`);
  await s.until(async () => (await painted()) > 20, 'the memory line drawn', 20000).catch(async (e) => assert.fail(`${e.message}: ${await painted()} pixels`));
  await shot('container-stats');
});

test('the terminal opens a new shell after the container restarts', async () => {
  await s.click('#tab-terminal');
  await s.until(async () => (await s.text('#terminal-status'))?.includes('in the container'), 'the shell');
  await s.click('[aria-label="Select talker"]');
  await s.click('#bulk-restart');
  await s.click('[aria-label="Select talker"]');
  // The old shell ends with the container; a new one answers.
  await s.until(async () => !(await s.text('#terminal-status'))?.includes('in the container'), 'the old shell gone', 30000).catch(() => {});
  await s.until(async () => (await s.text('#terminal-status'))?.includes('in the container'), 'a new shell', 40000).catch(async (e) =>
    assert.fail(`${e.message}: ${await s.text('#terminal-status')}`),
  );
  assert.equal(await rowState('talker'), 'running');
  await s.click('#terminal');
  const rows = () => s.text('#terminal .xterm-rows');
  await s.until(async () => /[#$] $/m.test((await rows()) ?? ''), 'the prompt').catch(() => {});
  await s.type('.xterm-helper-textarea', 'echo $((7*6))-again', false);
  await s.type('.xterm-helper-textarea', '\uE007', false);
  await s.until(async () => (await rows())?.includes('42-again'), 'the answer after the restart', 15000).catch(async (e) =>
    assert.fail(`${e.message}: ${await rows()}`),
  );
  await shot('terminal-after-restart');
});

test('bulk stop and remove of two containers', async () => {
  await s.click('[aria-label="Select web"]');
  await s.click('[aria-label="Select talker"]');
  await s.click('#bulk-stop');
  await s.until(async () => (await rowState('web')) === 'exited' && (await rowState('talker')) === 'exited', 'both stopped', 30000);
  await s.click('#bulk-remove');
  await s.until(async () => (await rowState('web')) === null && (await rowState('talker')) === null, 'both removed', 30000);
});

test('volumes, networks and engine views', async () => {
  await s.click('#nav-volumes');
  await s.waitFor('h1');
  await shot('volumes');
  await s.click('#nav-networks');
  await s.waitFor('#networks');
  await shot('networks');
  await s.click('#nav-engine');
  await s.until(async () => (await s.text('#engine-info'))?.includes('Version'), 'the engine facts');
  await shot('engine');
});

test('tags an image, pushes the new name, and reads its history', async () => {
  const target = `127.0.0.1:${fx.port}/bb:e2e`;
  await s.click('#nav-images');
  await s.click(`tr[data-tags~="${image}"] button.tag`);
  await s.waitFor('#tag-dialog[open]');
  await s.type('#tag-target', target);
  await shot('tag-dialog');
  await s.click('#tag-submit');
  // The same image now carries both names.
  await s.until(
    async () => (await s.exec('return document.querySelector(`tr[data-tags~="${arguments[0]}"]`)?.dataset.tags ?? ""', image))?.includes(target),
    'the new tag in the list',
  ).catch(async (e) => assert.fail(`${e.message}: ${await s.text('#tag-error')}`));
  await s.click(`tr[data-tags~="${image}"] button.push`);
  await s.until(async () => {
    const st = await s.exec('return document.querySelector("#push-progress")?.dataset.state');
    return st === 'done' || st === 'failed' ? st : null;
  }, 'the push to finish', 30000);
  assert.equal(await s.exec('return document.querySelector("#push-progress").dataset.state'), 'done', await s.text('#push-message'));
  // The row's first name was pushed; the registry lists its tag.
  const pushed = (await s.text('#push-message')).match(/^Pushed .*:([^:]+)\.$/)[1];
  assert.match(fx.inNs('curl', ['-sf', `http://127.0.0.1:${fx.port}/v2/bb/tags/list`]), new RegExp(`"${pushed}"`));
  await s.click(`tr[data-tags~="${image}"] button.history`);
  await s.until(async () => (await s.exec('return document.querySelectorAll("#history tr.step").length')) > 0, 'the history steps');
  assert.match(await s.text('#history-total'), /MB/);
  await shot('image-history');
  await s.click('#history-close');
});

test('creates a volume, is told when it is in use, removes it; creates and removes a network', async () => {
  await s.click('#nav-volumes');
  await s.click('#volume-create');
  await s.waitFor('#volume-dialog[open]');
  await s.type('#volume-name', 'e2e-data');
  await s.type('#volume-labels', 'made-by=e2e');
  await shot('volume-create');
  await s.click('#volume-submit');
  await s.waitFor('tr[data-name="e2e-data"]');
  await s.click('tr[data-name="e2e-data"] button.inspect');
  await s.until(async () => (await s.text('#inspect-json'))?.includes('"made-by": "e2e"'), 'the volume document');
  await shot('volume-inspect');
  await s.click('#inspect-close');
  await shot('volumes-list');
  // In use by a container: the engine's sentence, in the dialog.
  await runFromDialog({ name: 'user', volumes: 'e2e-data:/data', cmd: 'sleep 3600' });
  await s.click('#nav-volumes');
  await s.click('tr[data-name="e2e-data"] button.remove');
  await s.click('#remove-volume-ok');
  await s.until(async () => (await s.text('#remove-volume-error'))?.includes('in use'), 'the in-use sentence');
  await shot('volume-in-use');
  await s.exec('document.querySelector("#remove-volume").close()');
  await s.click('#nav-containers');
  await s.click('[aria-label="Select user"]');
  await s.click('#bulk-remove');
  await s.until(async () => (await rowState('user')) === null, 'the container removed', 30000);
  await s.click('#nav-volumes');
  await s.click('tr[data-name="e2e-data"] button.remove');
  await s.click('#remove-volume-ok');
  await s.until(async () => !(await s.exec('return !!document.querySelector(`tr[data-name="e2e-data"]`)')), 'the volume gone');

  await s.click('#nav-networks');
  await s.click('#network-create');
  await s.type('#network-name', 'e2e-net');
  await s.click('#network-submit');
  await s.waitFor('tr[data-name="e2e-net"]');
  await shot('networks-created');
  await s.click('tr[data-name="e2e-net"] button.remove');
  await s.click('#remove-network-ok');
  await s.until(async () => !(await s.exec('return !!document.querySelector(`tr[data-name="e2e-net"]`)')), 'the network gone');
});

test('settings: a saved engine is used, then automatic again', async () => {
  await s.click('#nav-settings');
  await s.waitFor('#stop-on-quit');
  await s.type('#endpoint-name', 'the test agent');
  await s.type('#endpoint-url', `unix://${fx.socket}`);
  await s.click('#endpoint-add');
  await s.click(`tr[data-url="unix://${fx.socket}"] button.use`);
  await s.until(async () => (await s.text('#status-text'))?.includes('from your saved endpoint'), 'the saved engine in use');
  await shot('settings');
  await s.click('tr[data-url=""] button.use');
  await s.until(async () => (await s.text('#status-text'))?.includes('from BERTH_HOST'), 'automatic again');
});

test('says so when the agent stops, and recovers when it is back', async () => {
  await s.click('#nav-containers');
  await fx.stopAgent();
  await s.until(async () => (await s.text('#status-text'))?.includes('not reachable'), 'the sentence', 20000);
  await shot('agent-stopped');
  await fx.startAgent();
  await s.until(async () => (await s.text('#status-text'))?.startsWith('Connected to'), 'the reconnection', 20000);
  await runFromDialog({ name: 'after', cmd: 'sleep 3600' });
  await s.click('#nav-containers');
  await s.until(async () => (await rowState('after')) === 'running', 'a container run after the restart');
  await s.click('[aria-label="Select after"]');
  await s.click('#bulk-remove');
  await s.until(async () => (await rowState('after')) === null, 'its removal', 30000);
});

test('starts the VM from the Engine view, sees it running, and stops it', async (t) => {
  if (!existsSync(join(vmImage, 'manifest.json'))) {
    assert.notEqual(process.env.CI, 'true', `no guest image at ${vmImage}: CI builds it with scripts/build-vm-image.sh`);
    t.skip(`no guest image at ${vmImage} (run scripts/build-vm-image.sh)`);
    return;
  }
  await s.click('#nav-engine');
  await s.until(async () => (await s.exec('return document.querySelector("#vm-phase")?.dataset.phase')) === 'stopped', 'the VM stopped at first');
  await s.click('#vm-start');
  // Running, or the sentence saying why not (then the test fails with it).
  await s.until(
    async () => (await s.exec('return document.querySelector("#vm-phase")?.dataset.phase === "ready" || !!document.querySelector("#vm-error")')),
    'the VM running',
    240000,
  ).catch(async (e) => assert.fail(`${e.message}: ${await s.text('#vm-status')}`));
  const failed = await s.exec('return document.querySelector("#vm-error")?.textContent ?? ""');
  assert.equal(failed, '', `the VM did not start (console: ${join(vmDir, 'console.log')})`);
  assert.equal(await s.exec('return document.querySelector("#vm-phase")?.dataset.phase'), 'ready');
  assert.match(await s.text('#vm-status'), /Running/);
  assert.match(await s.text('#vm-status'), /agent at /);
  // The CLI sees the same VM.
  const status = JSON.parse(execFileSync(berthBin, ['vm', 'status', '--dir', vmDir, '--format', 'json']).toString());
  assert.equal(status.phase, 'ready');
  await shot('engine-vm-running');
  await s.click('#vm-stop');
  await s.until(async () => (await s.exec('return document.querySelector("#vm-phase")?.dataset.phase')) === 'stopped', 'the VM stopped', 90000);
});
