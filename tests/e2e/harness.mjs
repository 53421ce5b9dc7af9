// Starts the pieces of the end-to-end suite — the provider, the upstream, the gateway built
// from this tree, headless Chromium — and holds the steps every scenario shares.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { startOp } from './op.mjs';
import { startUpstream } from './upstream.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const OUT = join(here, 'out');
const BINARY = process.env.E2E_GATEWAY_BIN ?? join(here, '..', '..', 'target', 'debug', 'sessiongate');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** The provider's tokens live this long (seconds): several lifetimes fit in one scenario. */
export const TOKEN_TTL = 8;
/** The gateway's session policy, short so that every deadline is reached within minutes. */
export const IDLE = 12;
export const ABSOLUTE = 40;
export const WARN_BEFORE = 8;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A free loopback port: the gateway's must be known before the provider registers it. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function gatewayConfig({ port, adminPort, issuer, upstream, secret }) {
  return `
[server]
listen = "127.0.0.1:${port}"
public_url = "http://127.0.0.1:${port}"
admin_listen = "127.0.0.1:${adminPort}"
shutdown_grace = "1s"

[upstream]
url = "${upstream}"

[oidc]
issuer = "${issuer}"
client_id = "sessiongate-e2e"
client_secret = "e2e-client-secret"
scopes = ["openid", "email", "profile"]
metadata_refresh = "1h"

[session]
secrets = ["${secret}"]
idle_timeout = "${IDLE}s"
absolute_timeout = "${ABSOLUTE}s"
touch_interval = "1s"
refresh_before_expiry = "3s"
inject_warning = true
warning_before = "${WARN_BEFORE}s"

[logout]
rp_initiated = true

[access]
public_paths = ["/favicon.ico"]
api_paths = ["/api/"]

[log]
format = "json"
level = "info"
`;
}

async function waitFor(url, what, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`${what} did not come up at ${url}`);
    await sleep(100);
  }
}

/** Provider, upstream and gateway, wired to one another. */
export async function startStack() {
  mkdirSync(OUT, { recursive: true });
  const port = await freePort();
  const adminPort = await freePort();
  const gatewayUrl = `http://127.0.0.1:${port}`;
  const op = await startOp({
    tokenTtl: TOKEN_TTL,
    client: {
      client_id: 'sessiongate-e2e',
      client_secret: 'e2e-client-secret',
      redirect_uris: [`${gatewayUrl}/oauth2/callback`],
      post_logout_redirect_uris: [`${gatewayUrl}/`],
      backchannel_logout_uri: `${gatewayUrl}/oauth2/backchannel_logout`,
      backchannel_logout_session_required: true,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  });
  const upstream = await startUpstream();

  const dir = mkdtempSync(join(tmpdir(), 'sessiongate-e2e-'));
  const configPath = join(dir, 'sessiongate.toml');
  writeFileSync(configPath, gatewayConfig({
    port, adminPort, issuer: op.issuer, upstream: upstream.url, secret: randomBytes(32).toString('base64'),
  }));
  const log = [];
  const gateway = spawn(BINARY, ['run', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [gateway.stdout, gateway.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => log.push(chunk));
  }
  const exited = new Promise((resolve) => gateway.on('exit', resolve));
  await Promise.race([
    waitFor(`http://127.0.0.1:${adminPort}/readyz`, 'the gateway'),
    exited.then((code) => { throw new Error(`the gateway exited (${code}):\n${log.join('')}`); }),
  ]);

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });

  return {
    op,
    upstream,
    browser,
    gatewayUrl,
    gatewayLog: log,
    async newContext(options = {}) {
      const context = await browser.newContext({ viewport: { width: 900, height: 560 }, ...options });
      // The closed network: nothing but loopback, so no page waits on a font server.
      await context.route(/^https?:\/\/(?!127\.)/, (route) => route.abort());
      return context;
    },
    async stop() {
      await browser.close();
      gateway.kill('SIGTERM');
      await exited;
      await Promise.all([op.close(), upstream.close()]);
    },
  };
}

/** The provider's login page is showing: sign in there (and confirm consent, once). */
export async function loginAtOp(page, user, shot) {
  await page.waitForSelector('input[name="login"]');
  await page.fill('input[name="login"]', user);
  await page.fill('input[name="password"]', 'any password');
  if (shot) await screenshot(page, shot);
  await page.click('button[type="submit"]');
  await page.waitForLoadState('load');
  if (await page.locator('input[name="prompt"][value="consent"]').count()) {
    await page.click('button[type="submit"]');
  }
}

/** The identity headers the upstream saw for the page now showing. */
export async function shownIdentity(page) {
  return page.$$eval('#identity td', (cells) => Object.fromEntries(cells.map((c) => [c.dataset.header, c.textContent])));
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(OUT, `${name}.png`) });
}

export async function opStats(op) {
  return (await fetch(`${op.issuer}/_test/stats`)).json();
}

/** Whether the page is at the provider (its URL, not the gateway's). */
export function atOp(page, op) {
  return page.url().startsWith(op.issuer);
}
