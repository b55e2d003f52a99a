// The Volumes view's file browser and host folders, and the virtualized
// container list, end to end: Berth Desktop under Xvfb, driven through
// tauri-driver and WebKitWebDriver, against a real berth-agent and a
// local registry (see fixture.mjs), with the `berth` CLI checking what the
// app changed. The system's opener is a stand-in script first on PATH,
// which writes down the folder it was asked to open. Run by `npm run e2e`
// under xvfb-run (scripts/test.sh); screenshots go to
// target/e2e-screenshots/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fixture } from './fixture.mjs';
import { Session, startDriver } from './webdriver.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const target = process.env.CARGO_TARGET_DIR ?? join(repo, 'target');
const appBin = process.env.BERTH_DESKTOP_BIN ?? join(target, 'debug/berth-desktop');
const agentBin = process.env.BERTH_AGENT_BIN ?? join(target, 'debug/berth-agent');
const berthBin = join(dirname(agentBin), 'berth');
const shots = join(repo, 'target/e2e-screenshots');
// Other ports than desktop.test.mjs's and files.test.mjs's.
const driverPort = 4445 + (process.pid % 500) * 2 + 2000;
const LABEL = 'dev.berth.desktop.volume-browser';
/** Containers in the list beside `site`, more than fit the window. */
const MANY = 80;

let fx, driver, s, image, site, opened, edited;

const berth = (...args) =>
  execFileSync(berthBin, args, { env: { ...process.env, BERTH_HOST: `unix://${fx.socket}` }, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

async function shot(name) {
  mkdirSync(shots, { recursive: true });
  await new Promise((r) => setTimeout(r, 150));
  execFileSync('import', ['-window', 'root', join(shots, `${name}.png`)]);
}

/** The app's helper containers, by the CLI. */
const helpers = () => berth('ps', '-aq', '--filter', `label=${LABEL}`).split('\n').filter(Boolean);

before(async () => {
  if (!process.env.DISPLAY) throw new Error('no DISPLAY: run under xvfb-run -a');
  fx = new Fixture(agentBin);
  await fx.startRegistry();
  image = fx.pushBusybox();
  await fx.startAgent();
  berth('pull', '-q', image);
  berth('volume', 'create', 'data');
  berth('run', '--rm', '-v', 'data:/d', image, 'sh', '-c', 'echo "first words" > /d/notes.txt; mkdir /d/conf; echo x=1 > /d/conf/app.ini');
  site = fx.site('<h1>site</h1>\n');
  berth('run', '-d', '--name', 'site', '-v', `${site}:/www`, image, 'sleep', '3600');
  for (let i = 1; i <= MANY; i++) berth('create', '--name', `many-${String(i).padStart(3, '0')}`, image, 'true');
  // The system's opener, as the app finds it on PATH.
  const bin = join(fx.dir, 'bin');
  opened = join(fx.dir, 'opened');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$1" >> '${opened}'\n`);
  chmodSync(join(bin, 'xdg-open'), 0o755);
  // The user's code editor, found as VS Code's command.
  edited = join(fx.dir, 'edited');
  writeFileSync(join(bin, 'code'), `#!/bin/sh\nprintf '%s\\n' "$1" >> '${edited}'\n`);
  chmodSync(join(bin, 'code'), 0o755);
  driver = await startDriver(driverPort, {
    BERTH_HOST: `unix://${fx.socket}`,
    XDG_CONFIG_HOME: join(fx.dir, 'config'),
    BERTH_VM_DIR: join(fx.dir, 'vm'),
    PATH: `${bin}:${process.env.PATH}`,
  });
  s = await Session.create(driverPort, appBin);
});

after(async () => {
  await s?.quit();
  driver?.kill('SIGTERM');
  await fx?.close();
});

test('a long container list keeps few rows in the page, scrolls, and selects all', async () => {
  await s.until(async () => (await s.text('#status-text'))?.startsWith('Connected to'), 'the connection');
  await s.until(async () => (await s.exec('return document.querySelector("#containers")?.dataset.count')) === String(MANY + 1), 'the whole list', 30000);
  const inPage = () => s.exec('return document.querySelectorAll("#containers tbody tr.row").length');
  const n = await inPage();
  assert.ok(n > 5 && n < MANY / 2, `${n} rows in the page for ${MANY + 1} containers`);
  await shot('containers-virtual');
  await s.exec('const e = document.querySelector("#containers-scroll"); e.scrollTop = e.scrollHeight;');
  await s.waitFor('tr[data-name="many-001"]');
  assert.ok((await inPage()) < MANY / 2);
  await shot('containers-virtual-scrolled');
  await s.click('[aria-label="Select all"]');
  await s.until(async () => (await s.text('#selected-count')) === `${MANY + 1} selected`, 'every container selected');
  await s.click('[aria-label="Select all"]');
  // The filter still finds a row that was out of the page.
  await s.type('#container-filter', 'many-040');
  await s.until(async () => (await s.exec('return document.querySelector("#containers")?.dataset.count')) === '1', 'the filtered list');
  await s.waitFor('tr[data-name="many-040"]');
  await s.exec('const f = document.querySelector("#container-filter"); f.value = ""; f.dispatchEvent(new Event("input"));');
});

test('browses a volume, edits a file in it, and lets its helper go', async () => {
  await s.click('#nav-volumes');
  await s.click('tr[data-name="data"] button.browse');
  await s.waitFor('#volume-files[data-volume="data"] #files tr[data-name="notes.txt"][data-kind="file"]', 30000).catch(async (e) =>
    assert.fail(`${e.message}: ${await s.text('#volume-files')}`),
  );
  await s.waitFor('#files tr[data-name="conf"][data-kind="folder"]');
  assert.match(await s.text('#files tr[data-name="notes.txt"]'), /file\s*12 B\s*-rw-r--r--/);
  // The helper exists, and the app's container list leaves it out.
  assert.equal(helpers().length, 1);
  assert.equal(await s.exec(`return window.__TAURI_INTERNALS__.invoke('list_containers').then((l) => l.length)`), MANY + 1);
  await s.click('#files tr[data-name="conf"] button.enter');
  await s.waitFor('#files tr[data-name="app.ini"]', 30000);
  assert.equal((await s.text('#files-path')).replace(/\s+/g, ''), '/conf');
  await s.click('#files-up');
  await s.waitFor('#files tr[data-name="notes.txt"]');
  await shot('volume-files');

  await s.click('#files tr[data-name="notes.txt"] button.edit');
  await s.waitFor('#file-editor');
  assert.equal(await s.exec('return document.querySelector("#file-editor").value'), 'first words\n');
  await s.type('#file-editor', 'written from the Volumes view');
  await s.until(async () => !(await s.exec('return document.querySelector("#file-save").disabled')), 'the Save button');
  await s.click('#file-save');
  await s.until(async () => (await s.text('#files-notice')) === 'Saved /notes.txt.', 'the saved sentence', 30000).catch(async (e) =>
    assert.fail(`${e.message}: ${await s.text('#editor-error')}`),
  );
  await shot('volume-file-editor');
  assert.equal(berth('run', '--rm', '-v', 'data:/d', image, 'cat', '/d/notes.txt'), 'written from the Volumes view');
  await s.click('#file-close');

  // Leaving the view closes the browser: the helper goes.
  await s.click('#nav-containers');
  await s.until(async () => helpers().length === 0, 'the helper removed', 15000);
});

test('opens a bind mount’s host folder with the system’s opener', async () => {
  await s.click('#nav-volumes');
  const row = `#host-folders tr[data-path="${site}"]`;
  await s.waitFor(row, 20000);
  assert.match(await s.text(row), /bind mount\s*site/);
  await shot('volume-host-folders');
  await s.click(`${row} button.open-folder`);
  await s.until(async () => (await s.text('#host-folders-notice')) === `Opened ${site}.`, 'the opened sentence').catch(async (e) =>
    assert.fail(`${e.message}: ${await s.text('#host-folders-error')}`),
  );
  await s.until(() => existsSync(opened), 'the opener to run');
  assert.equal(readFileSync(opened, 'utf8'), `${site}\n`);
  // A path the page makes up is refused by the app.
  const refused = await s.exec(
    `return window.__TAURI_INTERNALS__.invoke('open_host_folder', { path: '/etc' }).then(() => 'opened', (e) => e.message)`,
  );
  assert.equal(refused, '/etc is not a bind mount or shared folder of this engine');
  assert.equal(readFileSync(opened, 'utf8'), `${site}\n`);
});

test('opens a bind mount’s host folder in the user’s code editor', async () => {
  const row = `#host-folders tr[data-path="${site}"]`;
  await s.until(async () => (await s.text(`${row} button.open-editor`)) === 'Open in VS Code', 'the editor named on the button');
  await s.click(`${row} button.open-editor`);
  await s.until(async () => (await s.text('#host-folders-notice')) === `Opened ${site} in VS Code.`, 'the opened sentence').catch(async (e) =>
    assert.fail(`${e.message}: ${await s.text('#host-folders-error')}`),
  );
  await s.until(() => existsSync(edited), 'the editor to run');
  assert.equal(readFileSync(edited, 'utf8'), `${site}\n`);
  const refused = await s.exec(
    `return window.__TAURI_INTERNALS__.invoke('open_in_editor', { path: '/etc' }).then(() => 'opened', (e) => e.message)`,
  );
  assert.equal(refused, '/etc is not a bind mount or shared folder of this engine');
  assert.equal(readFileSync(edited, 'utf8'), `${site}\n`);
});
