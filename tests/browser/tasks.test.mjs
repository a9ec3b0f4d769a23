// Tasks beyond MRPC in the tab (issue 22), on the CPU path with the tiny model:
// a single-sentence TSV of three string labels trains, Try it labels a
// sentence and the export names the labels; a CoNLL file trains a token
// classifier whose Try it colours the entities; a malformed file is one line
// and the data shown before stays.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer } from '../../www/serve.mjs';
import { mockHub } from './mock-hub.mjs';
import { LONG, artifacts, launch, open, text, waitForModel, waitForText } from './helpers.mjs';

let server;
before(async () => { server = await startServer({ extra: mockHub() }); });
after(async () => { await server.close(); });

const WORDS = ['the', 'of', 'and', 'in', 'to', 'was', 'he', 'is', 'as', 'for', 'on', 'with'];
const sentence = (seed, n) => Array.from({ length: n }, (_, k) => WORDS[(seed * 7 + k * 5 + Math.floor(seed / 3)) % WORDS.length]);

async function setParam(page, id, value) {
  await page.fill(`[data-testid=${id}]`, String(value));
  await page.dispatchEvent(`[data-testid=${id}]`, 'change');
}

async function pageWithTiny(t) {
  const browser = await launch(t, { webgpu: false });
  const hub = encodeURIComponent(server.base + '/hub');
  const { page, errors } = await open(browser, `${server.base}/?tab=finetune&backend=cpu&hub=${hub}&model=tiny/bert`);
  await waitForModel(page, 'tiny/bert');
  return { page, errors };
}

/// Files in a fresh folder of artifacts/, by name.
function files(name, contents) {
  const dir = fs.mkdtempSync(path.join(artifacts, `${name}-`));
  for (const [f, c] of Object.entries(contents)) fs.writeFileSync(path.join(dir, f), c);
  return (f) => path.join(dir, f);
}

async function pick(page, file) {
  await page.setInputFiles('[data-testid=train-file]', file('train'));
  await page.setInputFiles('[data-testid=dev-file]', file('dev'));
}

async function train(page, epochs) {
  await page.waitForFunction(() => document.querySelector('[data-testid=train-layers]')?.value === 'all', null, { timeout: LONG });
  await setParam(page, 'lr', '0.002');
  await setParam(page, 'epochs', epochs);
  await page.click('[data-testid=start]');
  await waitForText(page, 'train-status', /^Done\.$/);
}

test('a single-sentence TSV of three string labels trains, Try it labels, the export names the labels', { timeout: 600_000 }, async (t) => {
  const { page, errors } = await pageWithTiny(t);
  const label = (s) => (s.includes('he') ? 'person' : s.includes('in') ? 'place' : 'other');
  const rows = (from, n) => 'sentence\tlabel\n' + Array.from({ length: n }, (_, i) => {
    const s = sentence(from + i, 3 + ((from + i) % 5));
    return `${s.join(' ')}\t${label(s)}`;
  }).join('\n') + '\n';
  const f = files('three-labels', { 'train.tsv': rows(0, 40), 'dev.tsv': rows(100, 12) });
  await pick(page, (s) => f(`${s}.tsv`));
  await waitForText(page, 'data-summary', /train\.tsv \+ dev\.tsv · single sentences, 3 labels: other, person, place/);
  assert.match(await text(page, 'train-stats'), /^train: 40 examples; other \d+/);
  // a head on frozen features learns MRPC's pairs only: the choice is not offered here
  assert.equal(await page.locator('[data-testid=train-layers] option[value="0"]').count(), 0);
  await train(page, 3);
  assert.equal(await page.locator('[data-testid=epoch-metrics] tbody tr[data-accuracy]').count(), 3);
  assert.equal(await page.locator('[data-testid=try-b]').isHidden(), true, 'single sentences: no second text');
  await page.fill('[data-testid=try-a]', 'he was in the house');
  await page.click('[data-testid=try]');
  await waitForText(page, 'try-answer', /^(other|person|place) · P\(other\) = \d\.\d{3}, P\(person\) = \d\.\d{3}, P\(place\) = \d\.\d{3}$/);
  const downloads = [];
  page.on('download', (d) => downloads.push(d));
  await page.click('[data-testid=export]');
  for (let i = 0; i < 100 && !downloads.some((d) => d.suggestedFilename() === 'config.json'); i++) await page.waitForTimeout(100);
  const config = downloads.find((d) => d.suggestedFilename() === 'config.json');
  const saved = f('config.json');
  await config.saveAs(saved);
  const c = JSON.parse(fs.readFileSync(saved, 'utf8'));
  assert.deepEqual(c.id2label, { 0: 'other', 1: 'person', 2: 'place' });
  assert.deepEqual(c.label2id, { other: 0, person: 1, place: 2 });
  assert.equal(c.num_labels, 3);
  assert.deepEqual(errors, []);
});

test('a CoNLL file trains a token classifier; Try it colours the entities it finds', { timeout: 600_000 }, async (t) => {
  const { page, errors } = await pageWithTiny(t);
  const tag = (w) => ({ he: 'B-PER', in: 'B-LOC', on: 'I-LOC' })[w] ?? 'O';
  const conll = (from, n) => Array.from({ length: n }, (_, i) => sentence(from + i, 3 + ((from + i) % 6)).map((w) => `${w} NN ${tag(w)}`).join('\n')).join('\n\n') + '\n';
  const f = files('conll', { 'train.txt': conll(0, 30), 'dev.txt': conll(300, 10) });
  await pick(page, (s) => f(`${s}.txt`));
  await waitForText(page, 'data-summary', /train\.txt \+ dev\.txt · words tagged one by one, 4 labels: B-LOC, B-PER, I-LOC, O/);
  assert.match(await text(page, 'train-stats'), /^train: 30 sentences; labelled words: B-LOC \d+/);
  await train(page, 8);
  const header = await page.textContent('[data-testid=epoch-metrics] thead');
  assert.match(header, /entity F1/);
  assert.ok(await page.locator('[data-testid=entity-table]').count() >= 1, 'a row per entity type');
  await page.fill('[data-testid=try-a]', 'he was in the house of he');
  await page.click('[data-testid=try]');
  await waitForText(page, 'try-answer', /^\d+ tagged words$/);
  // the sentence, its entities marked in their type's colour, and a legend
  assert.match(await text(page, 'try-entities'), /he was in the house of he/);
  const marks = await page.$$eval('[data-testid=try-entities] mark', (m) => m.map((x) => [x.dataset.entity, x.textContent]));
  for (const [kind, words] of marks) assert.ok(['PER', 'LOC'].includes(kind), `${kind}: ${words}`);
  assert.ok((await text(page, 'try-legend')).length > 0);
  await page.screenshot({ path: path.join(artifacts, 'tasks-ner.png'), fullPage: true });
  assert.deepEqual(errors, []);
});

test('a malformed file is one line, and the data shown before stays in place of nothing', { timeout: 300_000 }, async (t) => {
  const { page, errors } = await pageWithTiny(t);
  await page.waitForSelector('[data-testid=data-summary]', { timeout: LONG });
  const f = files('malformed', { 'train.csv': 'text,label\n"unterminated,1\n', 'dev.csv': 'words,stars\nfine,1\n' });
  await pick(page, (s) => f(`${s}.csv`));
  const error = await waitForText(page, 'data-error', /./).then(() => text(page, 'data-error'));
  assert.equal(error.split('\n').length, 1, error);
  assert.match(error, /training file|validation file|column/);
  // nothing trains on it: Start waits for data
  assert.ok(await page.isDisabled('[data-testid=start]'));
  // choosing a built-in task again brings its data back
  await page.selectOption('[data-testid=task]', 'mrpc');
  await page.waitForSelector('[data-testid=data-summary]', { timeout: LONG });
  assert.match(await text(page, 'data-summary'), /GLUE MRPC/);
  assert.deepEqual(errors, []);
});
