// Serves the built page (dist/) on loopback: `node www/serve.mjs` (PORT, default 8080).
// Plain static files, nothing else: the page needs no server of its own.
// The browser tests reuse it with an extra handler (a mock of the model hub).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const types = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.wasm': 'application/wasm',
  '.css': 'text/css', '.json': 'application/json', '.txt': 'text/plain; charset=utf-8',
  '.tsv': 'text/tab-separated-values; charset=utf-8',
};

/// The file under `root` that a request path names, or an HTTP status: 400
/// for a bad percent escape or a NUL, 403 for anything outside `root` (the
/// path is decoded, then resolved, then compared by whole components, so
/// `/..%2fdist-x/` cannot reach a sibling folder named like `root`).
export function fileFor(root, pathname) {
  let decoded;
  try { decoded = decodeURIComponent(pathname); } catch { return 400; }
  if (decoded.includes('\0')) return 400;
  const file = path.resolve(root, '.' + path.sep + decoded);
  if (file !== root && !file.startsWith(root + path.sep)) return 403;
  return file;
}

/// `extra(req, res, url)` may answer a request first (return true when it did).
export async function startServer({ dist = path.join(here, '..', 'dist'), port = 0, extra } = {}) {
  const log = [];
  const root = path.resolve(dist);
  const server = http.createServer(async (req, res) => {
    // whatever a request holds, it gets an answer and the server keeps serving
    try { await answer(req, res); } catch { if (!res.headersSent) res.writeHead(500); res.end(); }
  });
  async function answer(req, res) {
    let url;
    try { url = new URL(req.url, 'http://localhost'); } catch { res.writeHead(400); res.end(); return; }
    log.push(url.pathname);
    if (extra && (await extra(req, res, url))) return;
    let file = fileFor(root, url.pathname);
    if (typeof file === 'number') { res.writeHead(file, { 'content-type': 'text/plain' }); res.end(); return; }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('not found'); return; }
    res.writeHead(200, {
      'content-type': types[path.extname(file)] ?? 'application/octet-stream',
      'content-length': fs.statSync(file).size,
    });
    fs.createReadStream(file).on('error', () => res.destroy()).pipe(res);
  }
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return { base, log, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const s = await startServer({ port: Number(process.env.PORT ?? 8080) });
  console.log(`Bert Lab is at ${s.base}/  (Ctrl+C stops)`);
}
