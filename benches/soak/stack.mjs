// The servers of the soak, each a process of its own on loopback, so that each can fail on
// its own: a Redis of the soak's own (nothing else uses it, so pausing it disturbs nothing
// else), the provider (127.0.0.2, so its cookies stay apart from the gateway's), the
// upstream and the gateway. The provider and the upstream can be stopped and started again
// on the same port; Redis can be paused (SIGSTOP) and resumed. The provider is the
// end-to-end suite's, given a state file and a key file so that a restarted one honours the
// sessions, tokens and signatures of the one before.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ABSOLUTE, IDLE, REDIS_TIMEOUT, REFRESH_BEFORE, TOKEN_TTL, TOUCH } from './policy.mjs';
import { freePort, launch, stop } from './processes.mjs';

const CLIENT_ID = 'sessiongate-soak';
const CLIENT_SECRET = 'soak-client-secret';

function gatewayConfig({ port, adminPort, upstreamPort, redisPort, issuer }) {
  return `# Written by benches/soak/stack.mjs for one soak run.
[server]
listen = "127.0.0.1:${port}"
public_url = "http://127.0.0.1:${port}"
admin_listen = "127.0.0.1:${adminPort}"
shutdown_grace = "2s"

[upstream]
url = "http://127.0.0.1:${upstreamPort}"
connect_timeout = "2s"
response_timeout = "30s"

[oidc]
issuer = "${issuer}"
client_id = "${CLIENT_ID}"
client_secret = "${CLIENT_SECRET}"
scopes = ["openid", "email", "profile"]
http_timeout = "5s"
refresh_timeout = "5s"

[session]
store = "redis"
redis_url = "redis://127.0.0.1:${redisPort}"
redis_timeout = "${REDIS_TIMEOUT}s"
secrets = ["${randomBytes(32).toString('base64')}"]
idle_timeout = "${IDLE}s"
absolute_timeout = "${ABSOLUTE}s"
touch_interval = "${TOUCH}s"
refresh_before_expiry = "${REFRESH_BEFORE}s"

[logout]
rp_initiated = true

[access]
public_paths = ["/static/"]
api_paths = ["/api/"]

[log]
format = "json"
level = "info"
`;
}

/** Answers once `url` answers 200: the gateway has no ready line for "provider discovered". */
async function untilOk(url, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

export async function startStack({ binary, out, here }) {
  const file = (name) => join(out, name);
  for (const name of ['op-state.json', 'op-key.json', 'gateway.log', 'op.log', 'upstream.log', 'redis.log']) {
    rmSync(file(name), { force: true });
  }
  const [port, adminPort, upstreamPort, redisPort, opPort] = await Promise.all([
    freePort(), freePort(), freePort(), freePort(), freePort('127.0.0.2'),
  ]);
  const gatewayUrl = `http://127.0.0.1:${port}`;
  const client = {
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`${gatewayUrl}/oauth2/callback`],
    post_logout_redirect_uris: [`${gatewayUrl}/`],
    backchannel_logout_uri: `${gatewayUrl}/oauth2/backchannel_logout`,
    backchannel_logout_session_required: true,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  };

  const redis = await launch('redis-server', [
    '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
  ], { logFile: file('redis.log'), ready: /Ready to accept connections/ });

  const opScript = join(here, '..', '..', 'tests', 'e2e', 'op.mjs');
  let op;
  const startOp = async () => {
    op = await launch(process.execPath, [
      opScript, '--port', String(opPort), '--client-json', JSON.stringify(client),
      '--token-ttl', String(TOKEN_TTL), '--state', file('op-state.json'), '--key-file', file('op-key.json'),
    ], { logFile: file('op.log'), ready: /^op ready (\S+)/ });
    return op.match[1];
  };
  // SIGTERM: the provider lets requests under way finish and writes its state before it exits.
  const stopOp = async () => {
    const { code, signal } = await stop(op, 'SIGTERM');
    if (code !== 0) throw new Error(`the provider exited with ${signal ?? code} on SIGTERM (see op.log)`);
  };

  let upstream;
  const startUpstream = async () => {
    upstream = await launch(process.execPath, [join(here, 'upstream.mjs'), '--port', String(upstreamPort)], {
      logFile: file('upstream.log'),
      ready: /^upstream ready/,
    });
  };
  // A crash, not a shutdown: connections and sockets under way are cut.
  const killUpstream = () => stop(upstream, 'SIGKILL');

  const issuer = await startOp();
  await startUpstream();

  const configPath = file('sessiongate.toml');
  writeFileSync(configPath, gatewayConfig({ port, adminPort, upstreamPort, redisPort, issuer }));
  // The gateway reads every SESSIONGATE_* variable as configuration and refuses unknown
  // ones, SESSIONGATE_BIN (which names the binary to the soak) among them.
  const { SESSIONGATE_BIN: _binary, ...env } = process.env;
  const gateway = await launch(binary, ['run', '--config', configPath], {
    logFile: file('gateway.log'),
    ready: /sessiongate started/,
    env,
  });
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  await untilOk(`${adminUrl}/readyz`);

  return {
    gatewayUrl,
    adminUrl,
    issuer,
    gatewayPid: gateway.child.pid,
    startOp,
    stopOp,
    startUpstream,
    killUpstream,
    pauseRedis: () => redis.child.kill('SIGSTOP'),
    resumeRedis: () => redis.child.kill('SIGCONT'),
    async metrics() {
      return (await fetch(`${adminUrl}/metrics`)).text();
    },
    /**
     * Stops everything; for the report, the gateway's exit status and its log, and the
     * provider's counters (kept in its state file, so they cover every restart).
     */
    async shutdown() {
      const gatewayExit = await stop(gateway, 'SIGTERM');
      const opStats = await (await fetch(`${issuer}/_test/stats`)).json();
      await stopOp();
      await stop(upstream, 'SIGTERM');
      redis.child.kill('SIGCONT');
      await stop(redis, 'SIGTERM');
      return { gatewayExit, gatewayLog: readFileSync(file('gateway.log'), 'utf8'), opStats };
    },
  };
}
