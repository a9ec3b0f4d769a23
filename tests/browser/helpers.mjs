// What the browser tests share: the server with the mock hub, Chromium, and
// small readers of the page.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '..', '..');
export const artifacts = path.join(root, 'artifacts');
fs.mkdirSync(artifacts, { recursive: true });
export const LONG = 240_000;

const quiet = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

/// Chromium, with WebGPU (SwiftShader) when `webgpu`; closed when the test `t`
/// ends, passed or failed (a browser left open keeps the test process alive).
export async function launch(t, { webgpu }) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: webgpu ? [...quiet, '--enable-unsafe-webgpu'] : quiet,
  });
  t.after(() => browser.close());
  return browser;
}

/// A page at `url` in a new context; `errors` collects uncaught page errors (a panic is one).
export async function open(browser, url, { width = 1400, noWebGpu = false, init } = {}) {
  const context = await browser.newContext({ viewport: { width, height: 1000 }, acceptDownloads: true });
  if (noWebGpu) {
    // a browser without WebGPU at all: neither the page nor its engine worker sees navigator.gpu
    await context.addInitScript(() => { delete Navigator.prototype.gpu; });
    await context.route('**/bertlab-worker_loader.js', async (route) => {
      const original = await (await route.fetch()).text();
      await route.fulfill({ contentType: 'text/javascript', body: `delete WorkerNavigator.prototype.gpu;${original}` });
    });
  }
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  return { page, errors, context };
}

export const text = (page, id) => page.textContent(`[data-testid=${id}]`);

export async function waitForModel(page, name) {
  await page.waitForFunction((n) => document.querySelector('[data-testid=model-info]')?.textContent.includes(n),
    name, { timeout: LONG });
}

/// Waits until the element `id`'s text matches `re`; a timeout says what the text was.
export async function waitForText(page, id, re) {
  try {
    await page.waitForFunction(([i, src, flags]) => new RegExp(src, flags).test(document.querySelector(`[data-testid=${i}]`)?.textContent ?? ''),
      [id, re.source, re.flags], { timeout: LONG });
  } catch (e) {
    const now = await page.textContent(`[data-testid=${id}]`).catch(() => null);
    const message = await page.textContent('[data-testid=run-message]').catch(() => null);
    throw new Error(`[data-testid=${id}] never matched ${re}: it reads ${JSON.stringify(now)} (run message: ${JSON.stringify(message)})`);
  }
}
