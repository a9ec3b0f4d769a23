// The masked word in the explorer (issue 21): a tiny BertForMaskedLM from the
// mock hub answers as transformers' fill-mask pipeline does
// (tests/fixtures/tiny-mlm/cases.json), from both sides and from each side
// alone, on the CPU path and on WebGPU; a text without [MASK] is one line; a
// model without the head says so and offers one that has it.
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

const fixture = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/tiny-mlm/cases.json'), 'utf8'));
const tokens = (page, id) => page.$$eval(`[data-testid=${id}] li`, (li) => li.map((x) => Number(x.dataset.token)));

for (const webgpu of [false, true]) {
  test(`a [MASK] shows the pipeline's words from both sides, the left and the right (${webgpu ? 'WebGPU' : 'CPU path'})`, { timeout: 600_000 }, async (t) => {
    const browser = await launch(t, { webgpu });
    const hub = encodeURIComponent(server.base + '/hub');
    const { page, errors } = await open(browser, `${server.base}/?backend=${webgpu ? 'gpu' : 'cpu'}&hub=${hub}&model=tiny/mlm`);
    await waitForModel(page, 'tiny/mlm');
    const c = fixture.cases[0];
    await page.fill('[data-testid=mask-text]', c.text);
    await page.click('[data-testid=mask-run]');
    await page.waitForSelector('[data-testid=mask-both] li', { timeout: LONG });
    assert.deepEqual(await tokens(page, 'mask-both'), c.masks[0].predictions.map((p) => p.token));
    assert.deepEqual(await tokens(page, 'mask-left'), c.left.map((p) => p.token));
    assert.deepEqual(await tokens(page, 'mask-right'), c.right.map((p) => p.token));
    const first = await page.textContent('[data-testid=mask-both] li');
    assert.ok(first.includes(c.masks[0].predictions[0].token_str) && first.includes(c.masks[0].predictions[0].score.toFixed(3)), first);
    // two masks: a row each
    await page.fill('[data-testid=mask-text]', fixture.cases[1].text);
    await page.click('[data-testid=mask-run]');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=mask-both]').length === 2, null, { timeout: LONG });
    // no mask: one line saying what to do
    await page.fill('[data-testid=mask-text]', 'a text without one');
    await page.click('[data-testid=mask-run]');
    await waitForText(page, 'mask-error', /type \[MASK\]/);
    assert.equal((await text(page, 'mask-error')).split('\n').length, 1);
    await page.screenshot({ path: path.join(artifacts, `masked-word-${webgpu ? 'webgpu' : 'cpu'}.png`), fullPage: true });
    assert.deepEqual(errors, []);
  });
}

test('a model without the masked-word head says so and offers bert-base-uncased', { timeout: 300_000 }, async (t) => {
  const browser = await launch(t, { webgpu: false });
  const hub = encodeURIComponent(server.base + '/hub');
  const { page, errors } = await open(browser, `${server.base}/?backend=cpu&hub=${hub}&model=tiny/bert`);
  await waitForModel(page, 'tiny/bert');
  await waitForText(page, 'mask-no-head', /tiny\/bert has no masked-word head/);
  assert.match(await text(page, 'load-masked-lm'), /bert-base-uncased/);
  assert.equal(await page.locator('[data-testid=mask-run]').count(), 0);
  assert.deepEqual(errors, []);
});
