// The page in headless Chromium: the explorer's numbers against PyTorch's,
// on WebGPU (Chromium's SwiftShader adapter) and on the CPU path; loading from
// a mock hub with progress and the cache; bad files. Needs `trunk build --release`
// first (.ci/test does it). Screenshots go to artifacts/ (git-ignored).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../../www/serve.mjs';
import { mockHub, tinyDir } from './mock-hub.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const artifacts = path.join(root, 'artifacts');
fs.mkdirSync(artifacts, { recursive: true });
const minilm = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/minilm.json')));
const tiny = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/tiny-bert.json')));
const TOL = 1e-4;
const LONG = 180_000;

let server;
before(async () => { server = await startServer({ extra: mockHub() }); });
after(async () => { await server.close(); });

const quiet = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

async function launch({ webgpu }) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: webgpu ? [...quiet, '--enable-unsafe-webgpu'] : quiet,
  });
}

async function open(browser, query = '') {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.base}/${query}`);
  return { page, errors, context };
}

const text = (page, id) => page.textContent(`[data-testid=${id}]`);

async function waitForModel(page, name) {
  await page.waitForFunction((n) => document.querySelector('[data-testid=model-info]')?.textContent.includes(n),
    name, { timeout: LONG });
}

/// The values JSON of the sentence selected in the explorer, once it shows `want`.
async function values(page, want) {
  const handle = await page.waitForFunction((w) => {
    const v = document.querySelector('[data-testid=values-json]')?.value;
    if (!v) return null;
    const j = JSON.parse(v);
    return j.text === w ? v : null;
  }, want, { timeout: LONG });
  return JSON.parse(await handle.jsonValue());
}

function maxAbs(a, b) {
  assert.equal(a.length, b.length, 'lengths differ');
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

async function similarity(page) {
  return page.$$eval('[data-testid=similarity] tbody tr', (rows) =>
    rows.map((r) => [...r.querySelectorAll('td')].map((td) => Number(td.dataset.value))));
}

async function attention(page) {
  return JSON.parse(await page.getAttribute('[data-testid=attention]', 'data-values'));
}

async function checkExplorer(page, label) {
  // a sentence typed by the user, then selected
  await page.click('[data-testid=add-sentence]');
  const inputs = page.locator('[data-testid=sentence]');
  await inputs.last().fill('Hello, how are you?');
  // HTML in a sentence stays text
  await page.click('[data-testid=add-sentence]');
  await inputs.last().fill('<img src=x onerror="window.pwned=1"> is just text');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=selected-sentence] option').length === 8,
    null, { timeout: LONG });
  await page.selectOption('[data-testid=selected-sentence]', '6');
  const v = await values(page, 'Hello, how are you?');
  const ref = minilm.hello;
  assert.deepEqual(v.input_ids, ref.input_ids[0]);
  assert.deepEqual(v.shape, [1, 8, 384]);
  const errHidden = maxAbs(v.last_hidden_state, ref.last_hidden_state);
  const errPooler = maxAbs(v.pooler_output, ref.pooler_output);
  console.log(`${label}: max abs error vs PyTorch: last_hidden_state ${errHidden.toExponential(2)}, pooler_output ${errPooler.toExponential(2)}`);
  assert.ok(errHidden <= TOL, `last_hidden_state off by ${errHidden}`);
  assert.ok(errPooler <= TOL, `pooler_output off by ${errPooler}`);
  assert.match(await text(page, 'hidden-shape'), /\[1, 8, 384\]/);
  assert.match(await text(page, 'torch-summary'), /^tensor\(\[\[\[-0\.0406, -0\.0248,  0\.1411,  \.\.\., -0\.1443, -0\.2807, -0\.1596\],/);
  const chips = await page.$$eval('[data-testid=tokens] .chip', (c) => c.map((x) => [x.textContent, x.dataset.id]));
  assert.deepEqual(chips.map((c) => c[0]), ref.tokens);

  // similarities: symmetric, ones on the diagonal; sentence 1 and 7 are the same text
  const sim = await similarity(page);
  assert.equal(sim.length, 8);
  for (let i = 0; i < 8; i++) {
    assert.ok(Math.abs(sim[i][i] - 1) < 1e-6);
    for (let j = 0; j < 8; j++) assert.ok(Math.abs(sim[i][j] - sim[j][i]) < 1e-6);
  }
  assert.ok(sim[0][6] > 0.9999, `identical sentences: ${sim[0][6]}`);
  const nearest = await page.textContent('[data-testid=neighbours] li');
  assert.match(nearest, /Hello, how are you\?/);

  // attention: every row sums to 1, for a head and for the average of heads
  for (const head of ['3', '999']) {
    await page.selectOption('[data-testid=layer]', '5');
    await page.selectOption('[data-testid=head]', head);
    const m = await attention(page);
    assert.equal(m.length, 64);
    for (let r = 0; r < 8; r++) {
      const s = m.slice(r * 8, r * 8 + 8).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(s - 1) < 1e-5, `row ${r} sums to ${s}`);
    }
  }
  // the map has a point per sentence, and per token on the toggle
  assert.equal(await page.locator('[data-testid=map] circle').count(), 8);
  await page.check('[data-testid=map-tokens]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=map] circle').length > 30);

  // text stayed text
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.equal(await page.locator('main img').count(), 0);
  assert.match(await text(page, 'timing'), /forward pass: [\d.]+ ms on /);
}

test('explorer on WebGPU equals PyTorch', { timeout: 600_000 }, async () => {
  const browser = await launch({ webgpu: true });
  const { page, errors } = await open(browser, '?backend=gpu');
  await waitForModel(page, 'all-MiniLM-L6-v2');
  const backend = await text(page, 'backend');
  assert.match(backend, /Backend: GPU: .*WebGPU/);
  await checkExplorer(page, 'WebGPU');
  await page.screenshot({ path: path.join(artifacts, 'explorer-webgpu.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await browser.close();
});

test('explorer on the CPU path when WebGPU is missing', { timeout: 600_000 }, async () => {
  const browser = await launch({ webgpu: false });
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  // a browser without WebGPU at all
  await context.addInitScript(() => { delete Navigator.prototype.gpu; });
  const page = await context.newPage();
  await page.goto(`${server.base}/`);
  await waitForModel(page, 'all-MiniLM-L6-v2');
  assert.equal(await text(page, 'backend'), 'Backend: CPU (WebGPU not available in this browser)');
  await checkExplorer(page, 'CPU');
  await page.screenshot({ path: path.join(artifacts, 'explorer-cpu.png'), fullPage: true });
  await browser.close();
});

test('a browser whose WebGPU has no adapter falls back to the CPU path', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: false });
  const { page } = await open(browser);
  await waitForModel(page, 'all-MiniLM-L6-v2');
  assert.match(await text(page, 'backend'), /^Backend: CPU \(/);
  const v = await values(page, 'Hello, how are you?');
  assert.ok(maxAbs(v.last_hidden_state, minilm.hello.last_hidden_state) <= TOL);
  await browser.close();
});

test('a model from the (mock) hub: progress, cache on reload, delete, bad files', { timeout: 600_000 }, async () => {
  const browser = await launch({ webgpu: true });
  const query = `?backend=cpu&hub=${encodeURIComponent(server.base + '/hub')}&model=tiny/bert`;
  const { page, errors } = await open(browser, query);
  await waitForModel(page, 'tiny/bert');
  // every file got a progress row with bytes and speed; tokenizer.json was a 404, so vocab.txt was used
  const rows = await page.$$eval('[data-testid=progress] .progress-row', (r) => r.map((x) => [x.dataset.file, x.textContent]));
  assert.deepEqual(rows.map((r) => r[0]).sort(), ['config.json', 'model.safetensors', 'tokenizer_config.json', 'vocab.txt']);
  assert.match(rows.find((r) => r[0] === 'model.safetensors')[1], /254\.7 kB \/ 254\.7 kB · [\d.]+ (kB|MB)\/s/);
  assert.ok(server.log.includes('/hub/tiny/bert/resolve/main/tokenizer.json'));
  await page.screenshot({ path: path.join(artifacts, 'hub-model.png'), fullPage: true });

  // the tiny model's outputs for "Hello, how are you?" (row 0 of PyTorch's padded batch)
  const v = await values(page, 'Hello, how are you?');
  const ref = tiny.padded_batch;
  const n = v.input_ids.length;
  assert.deepEqual(v.input_ids, ref.input_ids[0].slice(0, n));
  assert.ok(maxAbs(v.last_hidden_state, ref.last_hidden_state.slice(0, n * 32)) <= TOL);

  // a long text is truncated to the model's 40 positions, with a notice
  await page.locator('[data-testid=sentence]').first().fill('the time of day and the place where we are '.repeat(8).trim());
  await page.waitForSelector('[data-testid=truncated]', { timeout: LONG });
  assert.match(await text(page, 'truncated'), /truncated to 40 tokens/);

  // reload: the files come from the cache, not the network
  const before = server.log.filter((p) => p.startsWith('/hub/')).length;
  await page.reload();
  await waitForModel(page, 'tiny/bert');
  await page.waitForFunction(() => document.querySelector('[data-file="model.safetensors"]')?.textContent.includes('from cache'));
  const hubAfter = server.log.filter((p) => p.startsWith('/hub/'));
  // only the 404 (tokenizer.json, never cached) is asked again
  assert.deepEqual(hubAfter.slice(before), ['/hub/tiny/bert/resolve/main/tokenizer.json']);

  // the cache lists the model with its size, and can delete it
  await page.click('.cached summary');
  await page.waitForFunction(() => document.querySelector('[data-testid=cached-models]')?.textContent.includes('tiny/bert'));
  const listed = await text(page, 'cached-models');
  assert.match(listed, /tiny\/bert\/resolve\/main\/ · 26\d\.\d kB/);

  // bad files: a readable error, and the loaded model stays
  for (const [id, msg] of [['bad/truncated', /corrupt or truncated/], ['bad/html', /config\.json is not a valid BERT config/], ['no/such-model', /config\.json was not found \(404\)/]]) {
    await page.fill('[data-testid=model-source]', id);
    await page.click('[data-testid=load-model]');
    await page.waitForSelector('[data-testid=load-error]', { timeout: LONG });
    assert.match(await text(page, 'load-error'), msg);
    assert.match(await text(page, 'model-info'), /tiny\/bert/);
  }
  await page.screenshot({ path: path.join(artifacts, 'bad-file.png'), fullPage: true });

  // cancel a slow download
  await page.fill('[data-testid=model-source]', 'slow/bert');
  await page.click('[data-testid=load-model]');
  await page.waitForSelector('[data-file="model.safetensors"]', { timeout: LONG });
  await page.click('[data-testid=cancel]');
  await page.waitForFunction(() => document.querySelector('[data-testid=load-error]')?.textContent === 'cancelled', null, { timeout: LONG });
  assert.match(await text(page, 'model-info'), /tiny\/bert/);

  // files of models that failed to load are not kept in the cache
  assert.doesNotMatch(await text(page, 'cached-models'), /bad\//);

  // files picked from disk (the file input; dropping uses the same path)
  await page.setInputFiles('[data-testid=model-files]',
    ['config.json', 'model.safetensors', 'vocab.txt', 'tokenizer_config.json'].map((f) => path.join(tinyDir, f)));
  await waitForModel(page, 'dropped files');
  const dropped = await values(page, 'Hello, how are you?');
  assert.ok(maxAbs(dropped.last_hidden_state, ref.last_hidden_state.slice(0, n * 32)) <= TOL);

  // delete from the cache
  const del = page.locator('[data-testid=cached-models] li', { hasText: 'tiny/bert' }).locator('button');
  await del.click();
  await page.waitForFunction(() => !document.querySelector('[data-testid=cached-models]')?.textContent.includes('tiny/bert'));
  assert.deepEqual(errors, []);
  await browser.close();
});
