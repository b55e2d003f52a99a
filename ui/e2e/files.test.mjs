// The Files tab and the Engine view's prune, end to end: Berth Desktop
// under Xvfb, driven through tauri-driver and WebKitWebDriver, against a
// real berth-agent and a local registry (see fixture.mjs), with the
// `berth` CLI checking what the app changed in the container. Run by
// `npm run e2e` under xvfb-run (scripts/test.sh); screenshots go to
// target/e2e-screenshots/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fixture } from './fixture.mjs';
import { Session, startDriver } from './webdriver.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const target = process.env.CARGO_TARGET_DIR ?? join(repo, 'target');
const appBin = process.env.BERTH_DESKTOP_BIN ?? join(target, 'debug/berth-desktop');
const agentBin = process.env.BERTH_AGENT_BIN ?? join(target, 'debug/berth-agent');
const berthBin = join(dirname(appBin), 'berth');
const shots = join(repo, 'target/e2e-screenshots');
// Another port pair than desktop.test.mjs's, in case both ever run at once.
const driverPort = 4445 + (process.pid % 500) * 2 + 1000;

let fx, driver, s;

/** The `berth` CLI against the fixture's agent; its output. */
const berth = (...args) =>
  execFileSync(berthBin, args, { env: { ...process.env, BERTH_HOST: `unix://${fx.socket}` }, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

// The screen as X shows it (see desktop.test.mjs for why not WebDriver's).
async function shot(name) {
  mkdirSync(shots, { recursive: true });
  await new Promise((r) => setTimeout(r, 150));
  execFileSync('import', ['-window', 'root', join(shots, `${name}.png`)]);
}

before(async () => {
  if (!process.env.DISPLAY) throw new Error('no DISPLAY: run under xvfb-run -a');
  fx = new Fixture(agentBin);
  await fx.startRegistry();
  const image = fx.pushBusybox();
  await fx.startAgent();
  berth('pull', '-q', image);
  berth('run', '-d', '--name', 'files', image, 'sleep', '3600');
  berth('exec', 'files', 'sh', '-c', 'echo "hello from the image" > /etc/motd');
  driver = await startDriver(driverPort, { BERTH_HOST: `unix://${fx.socket}`, XDG_CONFIG_HOME: join(fx.dir, 'config') });
  s = await Session.create(driverPort, appBin);
});

after(async () => {
  await s?.quit();
  driver?.kill('SIGTERM');
  await fx?.close();
});

test('the Files tab browses /etc, edits a file and saves it into the container', async () => {
  await s.until(async () => (await s.text('#status-text'))?.startsWith('Connected to'), 'the connection');
  await s.click('tr[data-name="files"] .cname');
  await s.click('#tab-files');
  await s.waitFor('#files tr[data-name="etc"][data-kind="folder"]', 30000).catch(async (e) =>
    assert.fail(`${e.message}: ${await s.text('#files')}`),
  );
  await s.click('#files tr[data-name="etc"] button.enter');
  await s.until(async () => (await s.exec('return document.querySelector("#files table")?.dataset.path')) === '/etc', 'the /etc listing', 30000);
  await s.waitFor('#files tr[data-name="hostname"][data-kind="file"]');
  await s.waitFor('#files tr[data-name="motd"]');
  assert.match(await s.text('#files tr[data-name="motd"]'), /file\s*21 B\s*-rw-r--r--/);
  assert.equal((await s.text('#files-path')).replace(/\s+/g, ''), '/etc');
  await shot('files');

  await s.click('#files tr[data-name="motd"] button.edit');
  const editor = await s.waitFor('#file-editor');
  assert.equal(await s.exec('return document.querySelector("#file-editor").value'), 'hello from the image\n');
  await s.type('#file-editor', 'edited in Berth Desktop');
  await s.until(async () => !(await s.exec('return document.querySelector("#file-save").disabled')), 'the Save button');
  await s.click('#file-save');
  await s.until(async () => (await s.text('#files-notice')) === 'Saved /etc/motd.', 'the saved sentence').catch(async (e) =>
    assert.fail(`${e.message}: ${await s.text('#editor-error')}`),
  );
  assert.ok(editor);
  await shot('files-editor');
  assert.equal(berth('exec', 'files', 'cat', '/etc/motd'), 'edited in Berth Desktop');
  // Its mode and owner are kept.
  assert.equal(berth('exec', 'files', 'stat', '-c', '%a %u', '/etc/motd').trim(), '644 0');
  await s.click('#file-close').catch(async (e) => {
    await shot('files-close-failed');
    assert.fail(`${e.message}: ${await s.exec('return document.querySelector("#detail")?.innerHTML ?? document.body.innerHTML')}`);
  });
  await s.until(async () => (await s.text('#files tr[data-name="motd"]'))?.includes('23 B'), 'the new size in the list');
});

test('the Engine view shows disk usage and prunes a stopped container', async () => {
  berth('stop', '-t', '1', 'files');
  await s.click('#nav-engine');
  await s.until(async () => (await s.text('#disk-usage tr[data-kind="Containers"]'))?.match(/Containers\s*1\s*0/), 'the containers row', 20000);
  await s.click('#prune');
  await s.waitFor('#prune-confirm[open]');
  await s.click('#prune-confirm-ok');
  await s.until(async () => (await s.text('#pruned')) ?? '', 'the prune sentence', 30000);
  assert.match(await s.text('#pruned'), /^Removed 1 stopped container.*, reclaiming .+\.$/);
  await s.until(async () => (await s.text('#disk-usage tr[data-kind="Containers"]'))?.match(/Containers\s*0\s*0/), 'the usage refreshed');
  assert.equal(berth('ps', '-aq').trim(), '');
  await shot('engine-prune');
});
