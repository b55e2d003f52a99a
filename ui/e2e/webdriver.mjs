// A small W3C WebDriver client over fetch, for tauri-driver (which hands
// the session to Debian's WebKitWebDriver and the real app).
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

const W3C_ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

/** Starts tauri-driver on `port`; resolves once it answers. */
export async function startDriver(port, env) {
  const child = spawn('tauri-driver', ['--port', String(port), '--native-port', String(port + 1)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      await fetch(`http://127.0.0.1:${port}/status`);
      return child;
    } catch {
      if (Date.now() > deadline) throw new Error('tauri-driver did not start');
      await sleep(100);
    }
  }
}

async function call(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json.value ?? json)}`);
  return json.value;
}

export class Session {
  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  /** A session of the app at `application`; tried twice (tauri-driver
   * sometimes resets the first connection). */
  static async create(port, application) {
    const base = `http://127.0.0.1:${port}`;
    const caps = { capabilities: { alwaysMatch: { browserName: 'wry', 'tauri:options': { application } } } };
    let last;
    for (let i = 0; i < 2; i++) {
      try {
        const v = await call(base, 'POST', '/session', caps);
        return new Session(base, v.sessionId);
      } catch (e) {
        last = e;
        await sleep(1000);
      }
    }
    throw last;
  }

  cmd(method, path, body) {
    return call(this.base, method, `/session/${this.id}${path}`, body);
  }

  async find(css) {
    const v = await this.cmd('POST', '/element', { using: 'css selector', value: css });
    return v[W3C_ELEMENT];
  }

  /** Waits until `css` matches, then returns the element. */
  async waitFor(css, timeout = 15000) {
    return this.until(() => this.find(css).catch(() => null), `${css} to appear`, timeout);
  }

  async click(css) {
    const el = await this.waitFor(css);
    await this.cmd('POST', `/element/${el}/click`, {});
  }

  async type(css, text, clear = true) {
    const el = await this.waitFor(css);
    if (clear) await this.cmd('POST', `/element/${el}/clear`, {});
    await this.cmd('POST', `/element/${el}/value`, { text });
  }

  /** Runs `script` (a function body) in the page. */
  exec(script, ...args) {
    return this.cmd('POST', '/execute/sync', { script, args });
  }

  text(css) {
    return this.exec('const e = document.querySelector(arguments[0]); return e ? e.textContent : null;', css);
  }

  /** Polls `f` until it returns something truthy. */
  async until(f, what, timeout = 15000) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const v = await f();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  async screenshot() {
    return Buffer.from(await this.cmd('GET', '/screenshot'), 'base64');
  }

  async quit() {
    await this.cmd('DELETE', '').catch(() => {});
  }
}
