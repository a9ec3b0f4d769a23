// The Fine-tune page in headless Chromium on WebGPU: a short run on a subset of
// MRPC with the tiny model from the mock hub; the loss falls, metrics appear,
// pause, reload, resume from the checkpoint in browser storage, try it, export.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../../www/serve.mjs';
import { mockHub } from './mock-hub.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const artifacts = path.resolve(here, '..', '..', 'artifacts');
fs.mkdirSync(artifacts, { recursive: true });
const LONG = 240_000;

let server;
before(async () => { server = await startServer({ extra: mockHub() }); });
after(async () => { await server.close(); });

const text = (page, id) => page.textContent(`[data-testid=${id}]`);
const losses = async (page) => JSON.parse((await page.getAttribute('[data-testid=loss-curve]', 'data-losses')) || '[]');
const epochRows = (page) => page.locator('[data-testid=epoch-metrics] tbody tr[data-accuracy]');

async function setParam(page, id, value) {
  await page.fill(`[data-testid=${id}]`, String(value));
  await page.dispatchEvent(`[data-testid=${id}]`, 'change');
}

test('fine-tune on WebGPU: loss falls, metrics, pause, reload, resume, try it, export', { timeout: 900_000 }, async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const url = `${server.base}/?backend=gpu&tab=finetune&hub=${encodeURIComponent(server.base + '/hub')}&model=tiny/bert`
    + `&datasets=${encodeURIComponent(server.base + '/datasets')}`;
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('[data-testid=model-info]')?.textContent.includes('tiny/bert'), null, { timeout: LONG });
  assert.match(await text(page, 'backend'), /GPU: .*WebGPU/);
  await page.waitForSelector('[data-testid=data-summary]', { timeout: LONG });
  assert.match(await text(page, 'train-stats'), /3668 pairs, 2474 paraphrases/);
  assert.match(await text(page, 'dev-stats'), /408 pairs, 279 paraphrases .* majority-class baseline 68\.4% accuracy/);
  // the same split from the (mock) hub's datasets server, 100 rows a request
  await page.click('[data-testid=fetch-mrpc]');
  await page.waitForFunction(() => document.querySelector('[data-testid=data-summary]')?.textContent.includes('Hugging Face hub'), null, { timeout: LONG });
  assert.match(await text(page, 'train-stats'), /3668 pairs, 2474 paraphrases/);
  assert.match(await text(page, 'dev-stats'), /408 pairs, 279 paraphrases/);
  assert.equal(server.log.filter((p) => p === '/datasets/rows').length, 37 + 5);

  await setParam(page, 'train-limit', 64);
  await setParam(page, 'lr', '0.01');
  await setParam(page, 'epochs', 60);
  // pair features and a small MLP: enough capacity to fit 64 pairs of the tiny random model
  await page.selectOption('[data-testid=head-input]', 'pair');
  await setParam(page, 'mlp', 64);
  await page.click('[data-testid=start]');
  await page.waitForFunction(() => /Encoding (train|validation) pairs/.test(document.querySelector('[data-testid=train-status]')?.textContent), null, { timeout: LONG });
  // metrics appear after the first epoch; then pause
  await epochRows(page).first().waitFor({ timeout: LONG });
  await page.click('[data-testid=pause]');
  await page.waitForFunction(() => document.querySelector('[data-testid=train-status]')?.textContent === 'Paused.', null, { timeout: LONG });
  const pausedAt = (await losses(page)).length;
  assert.ok(pausedAt >= 4 && pausedAt < 240, `paused after ${pausedAt} steps`);
  await page.waitForFunction(() => /saved at step/.test(document.body.textContent), null, { timeout: LONG });
  await page.screenshot({ path: path.join(artifacts, 'finetune-paused.png'), fullPage: true });

  // reload: the saved run resumes where it stopped
  await page.reload();
  await page.waitForFunction(() => document.querySelector('[data-testid=model-info]')?.textContent.includes('tiny/bert'), null, { timeout: LONG });
  await page.waitForSelector('[data-testid=resume-saved]:not([disabled])', { timeout: LONG });
  await page.click('[data-testid=resume-saved]');
  await page.waitForFunction(() => document.querySelector('[data-testid=train-status]')?.textContent === 'Done.', null, { timeout: LONG });
  const all = await losses(page);
  assert.equal(all.length, 60 * 4, 'every step of 60 epochs × 4 batches, before and after the reload');
  const first = all.slice(0, 8).reduce((a, b) => a + b) / 8;
  const last = all.slice(-8).reduce((a, b) => a + b) / 8;
  // (deterministic for the seed: 0.689 → 0.588 when written)
  assert.ok(last < 0.9 * first, `the loss fell: ${first} → ${last}`);
  assert.equal(await epochRows(page).count(), 60);
  const acc = Number(await epochRows(page).last().getAttribute('data-accuracy'));
  assert.ok(acc > 0 && acc <= 1);
  await page.screenshot({ path: path.join(artifacts, 'finetune-done.png'), fullPage: true });

  // try it
  await page.click('[data-testid=try]');
  await page.waitForFunction(() => /P\(paraphrase\) = 0?\.\d{3}|1\.000/.test(document.querySelector('[data-testid=try-answer]')?.textContent), null, { timeout: LONG });

  // export: the MLP head with its metadata (Linear heads use classifier.* — tests/training.rs)
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export]')]);
  const file = path.join(artifacts, 'head.safetensors');
  await download.saveAs(file);
  const bytes = fs.readFileSync(file);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString());
  assert.deepEqual(header['head.dense.weight'].shape, [64, 4 * 32]);
  assert.deepEqual(header['head.out.weight'].shape, [2, 64]);
  assert.equal(header.__metadata__.head_input, 'pair');
  assert.equal(header.__metadata__.num_labels, '2');
  assert.deepEqual(errors, []);
  await browser.close();
});
