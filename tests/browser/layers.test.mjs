// Every layer (issue 21): the layer slider drives the views. At layer 0 and 1
// the selected sentence's states equal PyTorch's output_hidden_states
// (tests/fixtures/tiny-hidden-states.json), the heatmap's title names them,
// and the similarities and the map change; on the CPU path and on WebGPU.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer } from '../../www/serve.mjs';
import { mockHub } from './mock-hub.mjs';
import { LONG, artifacts, launch, open, root, text, waitForModel, waitForText } from './helpers.mjs';

let server;
before(async () => { server = await startServer({ extra: mockHub() }); });
after(async () => { await server.close(); });

const fixture = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/tiny-hidden-states.json'), 'utf8'));
const TOL = 1e-4;

async function valuesAt(page, key) {
  await page.waitForFunction((k) => {
    const v = document.querySelector('[data-testid=values-json]')?.value;
    return v && k in JSON.parse(v);
  }, key, { timeout: LONG });
  return JSON.parse(await page.inputValue('[data-testid=values-json]'));
}

const similarity = (page) => page.$$eval('[data-testid=similarity] tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.dataset.value)));
const points = (page) => page.$$eval('[data-testid=map-point] circle', (c) => c.map((x) => `${x.getAttribute('cx')},${x.getAttribute('cy')}`));

for (const webgpu of [false, true]) {
  test(`the layer slider shows every layer's states, equal to PyTorch's (${webgpu ? 'WebGPU' : 'CPU path'})`, { timeout: 600_000 }, async (t) => {
    const browser = await launch(t, { webgpu });
    const hub = encodeURIComponent(server.base + '/hub');
    const { page, errors } = await open(browser, `${server.base}/?backend=${webgpu ? 'gpu' : 'cpu'}&hub=${hub}&model=tiny/bert`);
    await waitForModel(page, 'tiny/bert');
    const [sentence] = fixture.texts[0];
    await page.locator('[data-testid=sentence]').first().fill(sentence);
    await page.waitForFunction((s) => JSON.parse(document.querySelector('[data-testid=values-json]')?.value || '{}').text === s, sentence, { timeout: LONG });
    const last = await valuesAt(page, 'last_hidden_state');
    assert.equal(last.layer, 2);
    assert.match(await text(page, 'hidden-layer-name'), /^2 of 2: the last$/);
    const [simLast, mapLast] = [await similarity(page), await points(page)];
    const [, seq, hidden] = fixture.shape;
    for (const layer of [0, 1]) {
      await page.fill('[data-testid=hidden-layer]', String(layer));
      const v = await valuesAt(page, `hidden_states[${layer}]`);
      await waitForText(page, 'hidden-title', new RegExp(`^hidden_states\\[${layer}\\]$`));
      const n = v.tokens.length;
      const want = fixture.hidden_states[layer].slice(0, seq * hidden).slice(0, n * hidden);
      const got = v[`hidden_states[${layer}]`];
      assert.equal(got.length, want.length);
      const err = Math.max(...got.map((x, i) => Math.abs(x - want[i])));
      assert.ok(err <= TOL, `layer ${layer}: max abs error ${err}`);
      assert.equal(v.pooler_output, null, 'the pooler reads the last layer only');
    }
    assert.match(await text(page, 'hidden-layer-name'), /^1 of 2$/);
    assert.notDeepEqual(await similarity(page), simLast, 'similarities follow the layer');
    assert.notDeepEqual(await points(page), mapLast, 'the map follows the layer');
    await page.screenshot({ path: path.join(artifacts, `layers-${webgpu ? 'webgpu' : 'cpu'}.png`), fullPage: true });
    assert.deepEqual(errors, []);
  });
}

test('a word in context: "bank" of money against the river\'s, layer by layer, equal to PyTorch', { timeout: 600_000 }, async (t) => {
  const bank = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/minilm-bank.json'), 'utf8'));
  const browser = await launch(t, { webgpu: false });
  const { page, errors } = await open(browser, `${server.base}/?backend=cpu`);
  await waitForModel(page, 'all-MiniLM-L6-v2');
  // the page's examples hold both senses: sentence 2 (money) and 3 (a river)
  await page.selectOption('[data-testid=selected-sentence]', '1');
  const chip = page.locator('[data-testid=tokens] button.chip', { hasText: /^bank$/ });
  await chip.waitFor({ timeout: LONG });
  await chip.click();
  await page.waitForSelector('[data-testid=context-line]', { timeout: LONG });
  assert.match(await text(page, 'context-word'), /“bank” in sentence 2/);
  const lines = await page.$$eval('[data-testid=context-line]', (l) => l.map((x) => [x.dataset.sentence, JSON.parse(x.dataset.values)]));
  assert.equal(lines.length, 1, 'one other "bank"');
  assert.equal(lines[0][0], '2', 'in sentence 3');
  const sims = lines[0][1];
  assert.equal(sims.length, bank.similarity_by_layer.length, 'the embeddings and every layer');
  for (const [l, s] of sims.entries()) assert.ok(Math.abs(s - bank.similarity_by_layer[l]) <= 2e-3, `layer ${l}: ${s} vs ${bank.similarity_by_layer[l]}`);
  assert.equal(await page.locator('[data-testid=context-nearest] li').count(), 10);
  // the nearest tokens follow the layer slider
  await page.fill('[data-testid=hidden-layer]', '0');
  await page.waitForFunction(() => /Nearest tokens at layer 0/.test(document.querySelector('[aria-label="A word in context"]')?.textContent ?? ''), null, { timeout: LONG });
  // a word that occurs once says so
  await page.selectOption('[data-testid=selected-sentence]', '3');
  await page.locator('[data-testid=tokens] button.chip', { hasText: /^guitar$/ }).click();
  await waitForText(page, 'context-word', /“guitar” in sentence 4/);
  assert.equal(await page.locator('[data-testid=context-line]').count(), 1, '"guitar" is in sentence 5 too');
  await page.locator('[data-testid=tokens] button.chip', { hasText: /^stage$/ }).click();
  await waitForText(page, 'context-alone', /“stage” occurs nowhere else/);
  await page.screenshot({ path: path.join(artifacts, 'word-in-context.png'), fullPage: true });
  assert.deepEqual(errors, []);
});
