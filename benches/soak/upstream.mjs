// The application behind the gateway in the soak: it trusts the identity header and says
// whom it served, so the virtual users can check they were served as themselves.
//
//   GET  /static/...  a public asset (no identity expected)
//   GET  /api/...     JSON {user, path}
//   POST /upload      reads the body as it streams, answers JSON {user, bytes}
//   GET  /ws          WebSocket: {"hello": user} first, then echoes every message
//   GET  anything     an HTML page naming the user
//
// A process of its own, so the soak can kill it and start it again on the same port:
// node upstream.mjs --port P   prints `upstream ready <url>`.
import http from 'node:http';
import { parseArgs } from 'node:util';

import { WebSocketServer } from 'ws';

const USER = 'x-forwarded-user';

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function handle(req, res) {
  const path = req.url.split('?')[0];
  const user = req.headers[USER] ?? null;
  if (req.method === 'POST' && path === '/upload') {
    let bytes = 0;
    req.on('data', (chunk) => { bytes += chunk.length; });
    req.on('end', () => json(res, 200, { user, bytes }));
    return;
  }
  // Whatever else a client sends is read and dropped, so the connection stays reusable.
  req.resume();
  if (path.startsWith('/static/')) {
    res.writeHead(200, { 'content-type': 'text/css', 'cache-control': 'no-cache' });
    res.end('body { font-family: sans-serif }\n');
  } else if (path.startsWith('/api/')) {
    json(res, 200, { user, path });
  } else {
    const name = String(user ?? '').replace(/[^\w.@-]/g, '');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!DOCTYPE html><html><head><title>Soak app</title></head><body>
<p id="user" data-user="${name}">Signed in as ${name}</p><p>${path.replace(/[^\w/.-]/g, '')}</p>
</body></html>`);
  }
}

export async function startUpstream({ host = '127.0.0.1', port = 0 } = {}) {
  const server = http.createServer(handle);
  const sockets = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    if (req.url.split('?')[0] !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
      return;
    }
    sockets.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ hello: req.headers[USER] ?? null }));
      ws.on('message', (data, binary) => ws.send(data, { binary }));
    });
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  return { url: `http://${host}:${server.address().port}`, server };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } } });
  const { url } = await startUpstream({ host: values.host, port: Number(values.port) });
  console.log(`upstream ready ${url}`);
}
