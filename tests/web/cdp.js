// A minimal Chrome DevTools Protocol client for the page test: starts Debian's chromium headless
// with --remote-debugging-pipe and speaks CDP over its fds 3 (commands) and 4 (answers and events),
// NUL-separated JSON. No npm package and no WebSocket: runs on Debian 12's own Node.js 18 as well.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

class Browser {
  // Starts chromium; `binary` is its path; onSpawn(child) is told of the process at once (so a
  // watchdog can kill it even while it starts). Call close() in every case.
  static async launch(binary, width, height, onSpawn = () => {}) {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cbrec-web-chromium-'));
    const args = ['--headless', '--remote-debugging-pipe', `--user-data-dir=${profile}`,
      '--disable-gpu', '--no-first-run', '--no-default-browser-check', '--disable-extensions',
      '--disable-background-networking', '--disable-sync', '--mute-audio', '--hide-scrollbars',
      '--font-render-hinting=none', `--window-size=${width},${height}`, 'about:blank'];
    if (process.getuid && process.getuid() === 0) args.unshift('--no-sandbox');
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    onSpawn(child);
    const browser = new Browser(child, profile);
    await browser.send('Browser.getVersion');
    return browser;
  }

  constructor(child, profile) {
    this.child = child;
    this.profile = profile;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    this.stderr = '';
    this.buffer = '';
    child.stderr.on('data', (d) => { this.stderr = (this.stderr + d).slice(-4000); });
    child.stdio[4].on('data', (chunk) => this.receive(chunk));
    child.on('exit', (code) => {
      for (const { reject } of this.pending.values()) reject(new Error(`chromium exited (${code}): ${this.stderr.slice(-500)}`));
      this.pending.clear();
    });
    child.on('error', (error) => {
      for (const { reject } of this.pending.values()) reject(error);
      this.pending.clear();
    });
  }

  receive(chunk) {
    this.buffer += chunk.toString('utf8');
    let end;
    while ((end = this.buffer.indexOf('\0')) >= 0) {
      const message = JSON.parse(this.buffer.slice(0, end));
      this.buffer = this.buffer.slice(end + 1);
      if (message.id && this.pending.has(message.id)) {
        const { resolve, reject, method } = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.error) reject(new Error(`${method}: ${message.error.message}`));
        else resolve(message.result);
      } else if (message.method) {
        for (const listener of this.listeners) listener(message);
      }
    }
  }

  // Sends one CDP command (to the page session when sessionId is given); resolves with its result.
  send(method, params = {}, sessionId = undefined, timeoutMs = 15000) {
    const id = this.nextId++;
    const message = { id, method, params };
    if (sessionId) message.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        method,
        resolve: (r) => { clearTimeout(timer); resolve(r); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.child.stdio[3].write(JSON.stringify(message) + '\0');
    });
  }

  on(listener) { this.listeners.push(listener); }

  // Returns a Page bound to the tab chromium opened at start (a new tab when it has none).
  async newPage() {
    const { targetInfos } = await this.send('Target.getTargets');
    const open = targetInfos.find((t) => t.type === 'page');
    const { targetId } = open || await this.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    return new Page(this, sessionId);
  }

  // Closes chromium (killed if it does not exit within 1 s) and removes its profile folder.
  async close() {
    const exited = this.child.exitCode !== null ? Promise.resolve()
      : new Promise((resolve) => this.child.once('exit', resolve));
    try { await this.send('Browser.close', {}, undefined, 1000); } catch (e) { /* already gone */ }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 1000);
    await exited;
    clearTimeout(timer);
    fs.rmSync(this.profile, { recursive: true, force: true, maxRetries: 3 });
  }
}

class Page {
  constructor(browser, sessionId) {
    this.browser = browser;
    this.sessionId = sessionId;
    this.errors = [];
    browser.on((m) => {
      if (m.sessionId !== sessionId) return;
      if (m.method === 'Runtime.consoleAPICalled' && (m.params.type === 'error' || m.params.type === 'assert')) {
        this.errors.push(`console.${m.params.type}: ${m.params.args.map((a) => a.value ?? a.description).join(' ')}`);
      } else if (m.method === 'Runtime.exceptionThrown') {
        const d = m.params.exceptionDetails;
        this.errors.push(`uncaught: ${d.exception ? d.exception.description : d.text}`);
      } else if (m.method === 'Log.entryAdded' && m.params.entry.level === 'error') {
        this.errors.push(`log: ${m.params.entry.text} ${m.params.entry.url || ''}`);
      }
    });
  }

  send(method, params) { return this.browser.send(method, params, this.sessionId); }

  async init(width, height) {
    await Promise.all([this.send('Page.enable'), this.send('Runtime.enable'), this.send('Log.enable')]);
    await this.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
  }

  async goto(url) {
    await this.send('Page.navigate', { url });
  }

  // Evaluates an expression in the page (awaiting a promise) and returns its JSON value.
  async eval(expression) {
    const r = await this.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true });
    if (r.exceptionDetails) {
      throw new Error(`in page: ${r.exceptionDetails.exception ? r.exceptionDetails.exception.description : r.exceptionDetails.text}`);
    }
    return r.result.value;
  }

  // Polls `expression` until it is truthy; returns its value or throws `what` after timeoutMs.
  async waitFor(expression, what, timeoutMs = 15000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let value = null, problem = '';
      try { value = await this.eval(expression); } catch (error) { problem = ` (last: ${error.message})`; }
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${problem}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  // A real mouse click at the centre of the element `selector` matches (scrolled into view first);
  // fails if another element covers that point.
  async click(selector) {
    const box = await this.eval(`(() => {
      const e = document.querySelector(${JSON.stringify(selector)});
      if (!e) return null;
      e.scrollIntoView({ block: 'center' });
      const r = e.getBoundingClientRect();
      const x = r.left + r.width / 2, y = r.top + r.height / 2;
      const top = document.elementFromPoint(x, y);
      return { x, y, covered: !(top === e || e.contains(top)) };
    })()`);
    if (!box) throw new Error(`nothing matches ${selector}`);
    if (box.covered) throw new Error(`${selector} is covered by another element`);
    for (const type of ['mousePressed', 'mouseReleased']) {
      await this.send('Input.dispatchMouseEvent', { type, x: box.x, y: box.y, button: 'left', clickCount: 1 });
    }
  }

  async type(selector, text) {
    await this.click(selector);
    await this.eval(`document.querySelector(${JSON.stringify(selector)}).select()`);
    await this.send('Input.insertText', { text });
  }

  // Saves a PNG of the whole page to `file` (viewportOnly: of the viewport alone, shrunk by `scale`).
  // Returns its size in bytes.
  async screenshot(file, width, viewportOnly = false, scale = 1) {
    let height = await this.eval('window.scrollTo(0, 0), Math.ceil(document.documentElement.scrollHeight)');
    if (viewportOnly) height = await this.eval('window.innerHeight');
    await this.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
    const clip = { x: 0, y: 0, width, height, scale };
    const { data } = await this.send('Page.captureScreenshot', { format: 'png', clip });
    fs.writeFileSync(file, Buffer.from(data, 'base64'));
    return fs.statSync(file).size;
  }
}

module.exports = { Browser };
