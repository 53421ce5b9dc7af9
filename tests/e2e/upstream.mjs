// The application behind the gateway in the end-to-end suite: a legacy-style app that trusts
// the identity headers it is given. Every HTML page shows them; /form is a classic form that
// posts back; /api/whoami answers JSON. It records what reached it, for the tests to read
// at GET /_test/received (tests ask the upstream directly, not through the gateway).
import http from 'node:http';
import { parseArgs } from 'node:util';

const IDENTITY = ['x-forwarded-user', 'x-forwarded-email', 'x-forwarded-preferred-username', 'x-forwarded-groups'];

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, req, body = '') {
  const rows = IDENTITY.map((h) => `<tr><th>${h}</th><td data-header="${h}">${escape(req.headers[h] ?? '')}</td></tr>`).join('');
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font:15px sans-serif;margin:2em}table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}</style>
</head><body>
<h1>${escape(title)}</h1>
<p>Path: <code id="path">${escape(req.url)}</code></p>
<table id="identity">${rows}</table>
${body}
<p><a href="/oauth2/sign_out">Sign out</a></p>
</body></html>`;
}

const FORM = `
<form id="order" method="post" action="/form/submit">
  <p><label>Customer <input name="customer" id="customer"></label></p>
  <p><label>Notes <textarea name="notes" id="notes" rows="4" cols="40"></textarea></label></p>
  <p><button type="submit" id="save">Save</button></p>
</form>`;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Starts the upstream; resolves once it listens. */
export async function startUpstream({ host = '127.0.0.1', port = 0 } = {}) {
  const received = [];
  const server = http.createServer(async (req, res) => {
    const body = await readBody(req);
    const path = req.url.split('?')[0];
    if (path === '/_test/received') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(received));
      return;
    }
    received.push({
      method: req.method,
      url: req.url,
      user: req.headers['x-forwarded-user'] ?? null,
      contentType: req.headers['content-type'] ?? null,
      body: body.toString('utf8'),
    });
    if (path.startsWith('/api/')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ user: req.headers['x-forwarded-user'] ?? null, path }));
    } else if (path === '/form' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page('Order form', req, FORM));
    } else if (path === '/form/submit' && req.method === 'POST') {
      const fields = new URLSearchParams(body.toString('utf8'));
      const list = [...fields].map(([k, v]) => `<li><b>${escape(k)}</b>: <span data-field="${escape(k)}">${escape(v)}</span></li>`).join('');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page('Order saved', req, `<ul id="saved">${list}</ul>`));
    } else {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page('Legacy app', req));
    }
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  return {
    url: `http://${host}:${server.address().port}`,
    received,
    close: () => new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } } });
  const upstream = await startUpstream({ host: values.host, port: Number(values.port) });
  console.log(`upstream ready ${upstream.url}`);
  process.on('SIGTERM', () => upstream.close().then(() => process.exit(0)));
}
