// The page in headless Chromium: the explorer's numbers against PyTorch's,
// on WebGPU (Chromium's SwiftShader adapter) and on the CPU path; loading from
// a mock hub with progress and the cache; bad files. Needs `trunk build --release`
// first (.ci/test does it). Screenshots go to artifacts/ (git-ignored).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer } from '../../www/serve.mjs';
import { mockHub, tinyDir } from './mock-hub.mjs';
import { LONG, artifacts, launch, open as openAt, root, text, waitForModel, waitForText } from './helpers.mjs';

const minilm = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/minilm.json')));
const tiny = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/tiny-bert.json')));
const TOL = 1e-4;

let server;
before(async () => { server = await startServer({ extra: mockHub() }); });
after(async () => { await server.close(); });

const open = (browser, query = '', options = {}) => openAt(browser, `${server.base}/${query}`, options);

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
  for (const head of ['3', 'average']) {
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

test('explorer on WebGPU equals PyTorch', { timeout: 600_000 }, async (t) => {
  const browser = await launch(t, { webgpu: true });
  const { page, errors } = await open(browser, '?backend=gpu');
  await waitForModel(page, 'all-MiniLM-L6-v2');
  const backend = await text(page, 'backend');
  assert.match(backend, /Backend: GPU: .*WebGPU/);
  await checkExplorer(page, 'WebGPU');
  await page.screenshot({ path: path.join(artifacts, 'explorer-webgpu.png'), fullPage: true });
  assert.deepEqual(errors, []);
});

test('explorer on the CPU path when WebGPU is missing', { timeout: 600_000 }, async (t) => {
  const browser = await launch(t, { webgpu: false });
  // a browser without WebGPU at all
  const { page, errors } = await open(browser, '', { noWebGpu: true });
  await waitForModel(page, 'all-MiniLM-L6-v2');
  // helper workers (a core each beyond the engine's, at most 3) join once they hold the model and take
  // parts of every batch: the explorer's eight sentences split between them, the one checked against
  // PyTorch in a helper's part
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const threads = Math.min(Math.max(cores - 1, 0), 3) + 1;
  await waitForText(page, 'backend', new RegExp(`^Backend: CPU \\(WebGPU not available in this browser\\) · ${threads} threads?$`));
  await checkExplorer(page, 'CPU');
  await page.screenshot({ path: path.join(artifacts, 'explorer-cpu.png'), fullPage: true });
  assert.deepEqual(errors, []);
});

test('a browser whose WebGPU has no adapter falls back to the CPU path', { timeout: 300_000 }, async (t) => {
  const browser = await launch(t, { webgpu: false });
  const { page, errors } = await open(browser);
  await waitForModel(page, 'all-MiniLM-L6-v2');
  assert.match(await text(page, 'backend'), /^Backend: CPU \(/);
  const v = await values(page, 'Hello, how are you?');
  assert.ok(maxAbs(v.last_hidden_state, minilm.hello.last_hidden_state) <= TOL);
  assert.deepEqual(errors, []);
});

/// Pastes `text` into the sentence field `index` as a user's paste would arrive.
async function paste(page, index, text) {
  await page.locator('[data-testid=sentence]').nth(index).evaluate((el, t) => {
    const data = new DataTransfer();
    data.setData('text/plain', t);
    el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  }, text);
}

test('a 10 MB paste and 1 000 sentences leave the page responsive, with notices', { timeout: 600_000 }, async (t) => {
  const browser = await launch(t, { webgpu: false });
  const { page, errors } = await open(browser, `?backend=cpu&hub=${encodeURIComponent(server.base + '/hub')}&model=tiny/bert`);
  await waitForModel(page, 'tiny/bert');
  await values(page, 'Hello, how are you?');
  // 10 MB in one field: kept to its first 20 000 characters, tokenized to the model's 40 positions
  const huge = 'word '.repeat(2_000_000);
  await page.locator('[data-testid=sentence]').first().fill(huge);
  await waitForText(page, 'sentences-notice', /cut to its first 20000 characters/);
  assert.equal(await page.locator('[data-testid=sentence]').first().evaluate((el) => el.value.length), 20_000);
  await page.waitForSelector('[data-testid=truncated]', { timeout: LONG });
  // the page answers while it works on it
  const t0 = Date.now();
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
  assert.ok(Date.now() - t0 < 2_000, `a frame took ${Date.now() - t0} ms`);
  // a pasted list becomes one sentence per line; only the first 64 are run
  const lines = Array.from({ length: 1000 }, (_, i) => `Sentence number ${i} is here.`).join('\n');
  await paste(page, 1, lines);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=sentence]').length === 1005, null, { timeout: LONG });
  await waitForText(page, 'sentences-notice', /1005 sentences: the views show the first 64/);
  await waitForText(page, 'left-out', /first 64 sentences; 941 more are not run/);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=similarity] tbody tr').length === 64, null, { timeout: LONG });
  assert.equal(await page.locator('[data-testid=sentence]').nth(1).inputValue(), 'Sentence number 0 is here.');
  assert.deepEqual(errors, []);
});

test('a model from the (mock) hub: progress, cache on reload, delete, bad files', { timeout: 600_000 }, async (t) => {
  const browser = await launch(t, { webgpu: true });
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
  for (const [id, msg] of [['bad/truncated', /corrupt or truncated/], ['bad/html', /config\.json is not a valid BERT config/], ['no/such-model', /config\.json was not found \(404\)/],
    ['bad/huge', /is 3000000000 bytes: more than a model's model\.safetensors may hold/]]) {
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
});

test('two loads at once: the later wins; a model that fails on the device stays cached', { timeout: 600_000 }, async (t) => {
  const browser = await launch(t, { webgpu: false });
  const hub = encodeURIComponent(server.base + '/hub');
  const { page, errors } = await open(browser, `?backend=cpu&hub=${hub}&model=tiny/bert`);
  await waitForModel(page, 'tiny/bert');
  // a slow download, then another model before it ends: the first is cancelled, never shown
  await page.fill('[data-testid=model-source]', 'slow/bert');
  await page.click('[data-testid=load-model]');
  await page.waitForSelector('[data-file="model.safetensors"]', { timeout: LONG });
  // while loading, the backend choice and the file picker wait
  assert.ok(await page.locator('[data-testid=backend-choice]').isDisabled());
  assert.ok(await page.locator('[data-testid=model-files]').isDisabled());
  assert.ok(await page.locator('[data-testid=load-model] ~ button').first().isDisabled(), '"Default" waits too');
  await page.evaluate(() => {
    // a second load straight from the form while the first runs (Enter in the field)
    const input = document.querySelector('[data-testid=model-source]');
    input.value = 'tiny/bert';
    input.dispatchEvent(new Event('input', { bubbles: true }));
    input.form.requestSubmit();
  });
  await page.waitForFunction(() => !document.querySelector('[data-testid=load-status]'), null, { timeout: LONG });
  await page.waitForTimeout(1500);
  assert.match(await text(page, 'model-info'), /^tiny\/bert/);
  assert.equal(await page.locator('[data-testid=load-error]').count(), 0);
  // Cancel still cancels the load in flight
  await page.fill('[data-testid=model-source]', 'slow/bert');
  await page.click('[data-testid=load-model]');
  await page.waitForSelector('[data-testid=cancel]', { timeout: LONG });
  await page.click('[data-testid=cancel]');
  await waitForText(page, 'load-error', /^cancelled$/);
  assert.match(await text(page, 'model-info'), /^tiny\/bert/);
  await page.context().close();

  // a browser without WebGPU asked for the GPU: the load fails on the device, the files stay cached
  const second = await open(browser, `?backend=gpu&hub=${hub}&model=tiny/bert`, { noWebGpu: true });
  await waitForText(second.page, 'load-error', /WebGPU not available in this browser/);
  await second.page.click('.cached summary');
  await second.page.waitForFunction(() => document.querySelector('[data-testid=cached-models]')?.textContent.includes('tiny/bert'), null, { timeout: LONG });
  const requests = server.log.filter((p) => p.startsWith('/hub/tiny/bert/')).length;
  await second.page.selectOption('[data-testid=backend-choice]', 'cpu');
  await waitForModel(second.page, 'tiny/bert');
  const again = server.log.filter((p) => p.startsWith('/hub/tiny/bert/')).slice(requests);
  assert.deepEqual(again, ['/hub/tiny/bert/resolve/main/tokenizer.json'], 'the files came from the cache');
  assert.deepEqual([...errors, ...second.errors], []);
});

test('the page stays responsive while its engine works; the CPU grid of ?bench runs', { timeout: 900_000 }, async (t) => {
  const browser = await launch(t, { webgpu: false });
  const { page, errors } = await open(browser, '?bench=cpu', { noWebGpu: true });
  await page.waitForSelector('[data-testid=bench-json]', { timeout: 800_000 });
  const r = JSON.parse(await text(page, 'bench-json'));
  console.log(await text(page, 'bench-table'));
  assert.deepEqual(r.errors, []);
  // the grid on one thread, then on every thread (helper workers: a core each beyond the engine's, at most 3)
  assert.deepEqual(r.rows.map((x) => `${x.batch}×${x.seq}`), ['1×8', '8×32', '32×128', '1×8', '8×32', '32×128']);
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const threads = Math.min(Math.max(cores - 1, 0), 3) + 1;
  const every = threads === 1 ? '1 thread' : `${threads} threads`;
  assert.deepEqual(r.rows.map((x) => x.backend.replace(/^CPU \(.*\) · /, '')), ['1 thread', '1 thread', '1 thread', every, every, every]);
  assert.ok(r.rows.every((x) => x.ms > 0 && /^CPU/.test(x.backend)));
  assert.ok(r.first_embedding_ms > 0 && r.explore_six_ms > 0);
  // page open → first embedding in its steps, in order
  assert.ok(r.page_started_ms < r.model_bytes_ms && r.model_bytes_ms < r.engine_loaded_ms && r.engine_loaded_ms < r.first_embedding_ms, JSON.stringify(r));
  // the engine runs in its worker: no main-thread task of 50 ms or more while it computes
  assert.ok(r.longest_main_thread_task_ms < 50, `a main-thread task took ${r.longest_main_thread_task_ms} ms`);
  assert.deepEqual(errors, []);
});

/// Share of near-white pixels of a canvas (all channels above 235).
async function whiteShare(page, id) {
  return page.$eval(`[data-testid=${id}]`, (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let white = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 235 && d[i + 1] > 235 && d[i + 2] > 235) white++;
    return white / (d.length / 4);
  });
}

/// The page fits its width: nothing scrolls sideways.
async function noSideScroll(page, label) {
  const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  assert.ok(scroll <= client + 1, `${label}: the page scrolls sideways (${scroll} px wide in ${client})`);
}

test('views a researcher can read: robust scales, linked selection, labelled axes, small screens', { timeout: 600_000 }, async (t) => {
  const browser = await launch(t, { webgpu: false });
  const { page, errors } = await open(browser, '?backend=cpu');
  const missing = [];
  page.on('response', (r) => { if (r.status() === 404) missing.push(r.url()); });
  await waitForModel(page, 'all-MiniLM-L6-v2');
  await values(page, 'Hello, how are you?');
  assert.match(await text(page, 'tagline'), /BERT in your browser tab · CPU/);
  // the six examples' similarity matrix fits its panel at 1400 px (column 6 was cut off)
  const overflow = await page.$eval('[data-testid=similarity]', (t) => t.parentElement.scrollWidth - t.parentElement.clientWidth);
  assert.ok(overflow <= 0, `the similarity matrix overflows by ${overflow} px`);
  // the header's backend and the forward-pass line name the same threads (they disagreed)
  const threads = (s) => s.match(/(\d+) threads?/)?.[1];
  await page.waitForFunction(() => {
    const m = (s) => s?.match(/(\d+) threads?/)?.[1];
    return m(document.querySelector('[data-testid=tagline]')?.textContent) === m(document.querySelector('[data-testid=timing]')?.textContent);
  }, null, { timeout: LONG }).catch(async () => assert.fail(`${await text(page, 'tagline')} vs ${await text(page, 'timing')}`));
  assert.ok(threads(await text(page, 'timing')), 'the forward-pass line names its threads');

  // last_hidden_state: one outlier no longer whitens the map (it did, ~94%, on the full range)
  await page.waitForFunction(() => document.querySelector('[data-testid=hidden-heatmap]').width === 384);
  const clipped = await whiteShare(page, 'hidden-heatmap');
  await page.selectOption('[data-testid=hidden-range]', 'full');
  await page.waitForFunction(() => /^-\d/.test(document.querySelector('[data-testid=hidden-colour-bar] .labels span').textContent));
  const full = await whiteShare(page, 'hidden-heatmap');
  console.log(`near-white share of "Hello, how are you?": ${(100 * clipped).toFixed(1)}% clipped, ${(100 * full).toFixed(1)}% full range`);
  assert.ok(clipped < 0.5, `clipped scale: ${clipped} near-white`);
  assert.ok(full > clipped, 'the full range is paler');
  await page.selectOption('[data-testid=hidden-range]', 'clip');
  assert.match(await text(page, 'outliers'), /Beyond the colour scale: dim \d+ \([+-]\d+\.\d\d at /);
  assert.equal(await page.locator('.heatmap-frame .row-labels li').count(), 8);

  // one selection for every view: a similarity row, a map point, the legend
  await page.locator('[data-testid=similarity-row]').nth(2).click();
  assert.equal(await page.inputValue('[data-testid=selected-sentence]'), '2');
  await values(page, 'We sat on the river bank and watched the boats.');
  assert.equal(await page.locator('[data-testid=similarity-row].selected').count(), 1);
  await page.locator('[data-testid=map-point]').nth(4).click();
  assert.equal(await page.inputValue('[data-testid=selected-sentence]'), '4');
  const picked = await values(page, 'Someone performs music with a guitar.');
  assert.equal(await page.locator('[data-testid=map-point].selected').count(), 1);
  assert.match(await page.textContent('svg.map'), /PC 1 \(\d+% of variance\).*PC 2 \(\d+%\)/);

  // attention: labels on both axes, a legend, every layer × head to click into
  const n = picked.tokens.length;
  assert.equal(await page.locator('.attention-frame .col-labels span').count(), n);
  assert.equal(await page.locator('.attention-frame .row-labels li').count(), n);
  assert.equal(await page.locator('[data-testid=attention-overview] .thumb').count(), 6 * 12);
  await page.locator('[data-testid=attention-overview] .thumb').nth(12 + 2).click();
  assert.equal(await page.inputValue('[data-testid=layer]'), '1');
  assert.equal(await page.inputValue('[data-testid=head]'), '2');
  await page.waitForSelector('[data-testid=attention-colour-bar]');

  // tabs follow the arrow keys
  await page.focus('[data-testid=tab-explore]');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.getAttribute('[data-testid=tab-finetune]', 'aria-selected'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'tab-finetune');
  await page.waitForSelector('[data-testid=baseline-row]', { timeout: LONG });
  await page.screenshot({ path: path.join(artifacts, 'views-finetune-1400.png'), fullPage: true });
  await page.keyboard.press('ArrowLeft');
  await page.screenshot({ path: path.join(artifacts, 'views-explorer-1400.png'), fullPage: true });

  // a phone's width: nothing scrolls sideways, on either page
  await page.setViewportSize({ width: 420, height: 900 });
  await page.waitForTimeout(300);
  await noSideScroll(page, 'explorer at 420 px');
  await page.screenshot({ path: path.join(artifacts, 'views-explorer-420.png'), fullPage: true });
  await page.click('[data-testid=tab-finetune]');
  await noSideScroll(page, 'fine-tune at 420 px');
  await page.screenshot({ path: path.join(artifacts, 'views-finetune-420.png'), fullPage: true });
  assert.deepEqual(missing, [], 'no request is a 404 (the icon included)');
  assert.deepEqual(errors, []);
});

test('a link to a model on another origin fetches nothing before the user agrees', { timeout: 600_000 }, async (t) => {
  const browser = await launch(t, { webgpu: false });
  // localhost and 127.0.0.1 are two origins: the page is on one, the link's model on the other
  const foreign = server.base.replace('127.0.0.1', 'localhost');
  const folder = `${foreign}/hub/tiny/other/resolve/main/`;
  const asked = () => server.log.filter((p) => p.startsWith('/hub/tiny/other/'));
  const { page, errors } = await open(browser, `?backend=cpu&model=${encodeURIComponent(folder)}`);
  await page.waitForSelector('[data-testid=link-confirm]', { timeout: LONG });
  assert.equal(await text(page, 'link-origin'), foreign);
  // the bundled model loads meanwhile; the foreign one is not touched
  await waitForModel(page, 'all-MiniLM-L6-v2');
  assert.deepEqual(asked(), []);
  await page.screenshot({ path: path.join(artifacts, 'link-confirm.png'), fullPage: true });
  // a hub id on another hub (?hub=) is asked about the same way, and named with its origin once loaded
  const viaHub = await open(browser, `?backend=cpu&hub=${encodeURIComponent(foreign + '/hub')}&model=tiny/other`);
  await viaHub.page.waitForSelector('[data-testid=link-confirm]', { timeout: LONG });
  assert.deepEqual(asked(), []);
  await viaHub.page.click('[data-testid=link-accept]');
  await waitForModel(viaHub.page, `tiny/other from ${foreign}`);
  assert.ok(asked().length > 0);
  // declining keeps the bundled model and fetches nothing more
  const before = asked().length;
  await page.click('[data-testid=link-dismiss]');
  await page.waitForSelector('[data-testid=link-confirm]', { state: 'detached' });
  assert.match(await text(page, 'model-info'), /all-MiniLM-L6-v2/);
  assert.equal(asked().length, before);
  assert.deepEqual([...errors, ...viaHub.errors], []);
});
