// The identity provider of the end-to-end suite: `oidc-provider` (OpenID Certified), with its
// own development login and consent pages, one confidential client for the gateway, short
// token lifetimes, refresh tokens that rotate on every use, RP-initiated and back-channel
// logout. Besides the provider it answers GET /_test/stats: how many refresh grants it
// served and refused, and how many back-channel logouts it sent, so tests can see what the
// gateway did at the provider without trusting the gateway's word for it.
//
// As a module: `await startOp({ host, port, client, tokenTtl, stateFile, keyFile })`. As a
// program: `node op.mjs --host 127.0.0.2 --port 4181 --client-json '{...}' [--state FILE]
// [--key-file FILE]`. The soak restarts it, and a restarted provider must not be noticed by
// sessions already under way: with --state it keeps its grants, sessions, tokens and
// counters in that file, so it still honours the refresh tokens it issued; with --key-file
// it signs with the same key as before, so the gateway still accepts its ID tokens. Its
// close() (and SIGTERM) lets requests under way finish, since a refresh grant cut off after
// the provider rotated the token would leave the gateway holding a spent one.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync, existsSync } from 'node:fs';
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

/** The users the development login accepts, with the claims their ID tokens carry. */
const CLAIMS = {
  email: ['email', 'email_verified'],
  profile: ['name', 'preferred_username', 'groups'],
};

function account(id) {
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        email: `${id}@example.com`,
        email_verified: true,
        name: id.charAt(0).toUpperCase() + id.slice(1),
        preferred_username: id,
        groups: ['staff', `team-${id}`],
      };
    },
  };
}

/** How long requests under way get to finish once the provider is asked to stop. */
const STOP_GRACE_MS = 5000;

/** The RSA signing key: the one in `keyFile` if there is one, else a new one (kept there). */
function signingKey(keyFile) {
  let jwk;
  if (keyFile && existsSync(keyFile)) {
    jwk = JSON.parse(readFileSync(keyFile, 'utf8'));
  } else {
    jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    // A private key, if only a test one.
    if (keyFile) writeFileSync(keyFile, JSON.stringify(jwk), { mode: 0o600 });
  }
  return { ...jwk, kid: 'e2e-rs256', use: 'sig', alg: 'RS256' };
}

/**
 * The provider's state: oidc-provider's records in one Map and the counters of
 * /_test/stats, optionally mirrored to a JSON file after each change, so that both outlive
 * the process.
 */
function stateStore(stateFile) {
  const saved = stateFile && existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, 'utf8')) : {};
  const records = new Map(Object.entries(saved.records ?? {}));
  const stats = saved.stats ?? {
    refreshGranted: 0, refreshRefused: 0, refreshErrors: [], backchannelSent: 0, backchannelFailed: 0, backchannelErrors: [], logins: 0,
  };
  const write = () => {
    writeFileSync(`${stateFile}.tmp`, JSON.stringify({ records: Object.fromEntries(records), stats }));
    renameSync(`${stateFile}.tmp`, stateFile);
  };
  let pending = null;
  const persist = () => {
    if (!stateFile || pending) return;
    // Coalesced: a burst of upserts costs one write.
    pending = setImmediate(() => {
      pending = null;
      write();
    });
  };
  /** Writes now what is still to be written: the process may be about to exit. */
  const flush = () => {
    if (!pending) return;
    clearImmediate(pending);
    pending = null;
    write();
  };
  return { stats, persist, flush, Adapter: adapter(records, persist) };
}

/** A storage adapter for oidc-provider over `records`, calling `persist` after each change. */
function adapter(records, persist) {
  const now = () => Math.floor(Date.now() / 1000);
  const live = (key) => {
    const record = records.get(key);
    if (!record) return undefined;
    if (record.expiresAt && record.expiresAt <= now()) {
      records.delete(key);
      return undefined;
    }
    return record;
  };

  return class Adapter {
    constructor(model) {
      this.model = model;
    }

    key(id) {
      return `${this.model}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const expiresAt = expiresIn ? now() + expiresIn : undefined;
      records.set(this.key(id), { payload, expiresAt });
      if (payload.grantId) {
        const grantKey = `grant:${payload.grantId}`;
        const members = live(grantKey)?.payload ?? [];
        members.push(this.key(id));
        records.set(grantKey, { payload: members, expiresAt });
      }
      if (payload.uid) records.set(`uid:${this.model}:${payload.uid}`, { payload: id, expiresAt });
      if (payload.userCode) records.set(`userCode:${payload.userCode}`, { payload: id, expiresAt });
      persist();
    }

    async find(id) {
      return live(this.key(id))?.payload;
    }

    async findByUid(uid) {
      const id = live(`uid:${this.model}:${uid}`)?.payload;
      return id === undefined ? undefined : this.find(id);
    }

    async findByUserCode(userCode) {
      const id = live(`userCode:${userCode}`)?.payload;
      return id === undefined ? undefined : this.find(id);
    }

    async consume(id) {
      const record = live(this.key(id));
      if (record) record.payload.consumed = now();
      persist();
    }

    async destroy(id) {
      records.delete(this.key(id));
      persist();
    }

    async revokeByGrantId(grantId) {
      for (const key of live(`grant:${grantId}`)?.payload ?? []) records.delete(key);
      records.delete(`grant:${grantId}`);
      persist();
    }
  };
}

/** Starts the provider; resolves once it listens. */
export async function startOp({ host = '127.0.0.2', port = 0, client, tokenTtl = 10, stateFile, keyFile }) {
  const state = stateStore(stateFile);
  const { stats } = state;
  const server = http.createServer();
  await new Promise((resolve) => server.listen(port, host, resolve));
  const issuer = `http://${host}:${server.address().port}`;

  const provider = new Provider(issuer, {
    adapter: state.Adapter,
    clients: [client],
    claims: CLAIMS,
    // Scope claims in the ID token itself: the gateway reads identity from it.
    conformIdTokenClaims: false,
    cookies: { keys: ['sessiongate-e2e-cookie-key'] },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
      revocation: { enabled: true },
    },
    // The provider guards its outgoing requests (back-channel logout) against special-use
    // addresses, loopback included; here every peer is on loopback on purpose.
    fetch: (url, { dispatcher: _ssrfGuard, ...options }) => globalThis.fetch(url, options),
    findAccount: (_ctx, id) => account(id),
    // A refresh token for every login, without the consent prompt offline_access needs.
    issueRefreshToken: async (_ctx, c) => c.grantTypeAllowed('refresh_token'),
    // Every use rotates, and a spent token presented again revokes the grant: a gateway that
    // spent one refresh token twice would lose the session, which the suite would see.
    rotateRefreshToken: true,
    jwks: { keys: [signingKey(keyFile)] },
    ttl: {
      AccessToken: tokenTtl,
      IdToken: tokenTtl,
      RefreshToken: 24 * 3600,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 24 * 3600,
    },
  });

  // Each counted event changes the state file too, so counters and records are saved together.
  const count = (update) => (...args) => {
    update(...args);
    state.persist();
  };
  provider.on('grant.success', count((ctx) => {
    if (ctx.oidc.params.grant_type === 'refresh_token') stats.refreshGranted += 1;
  }));
  provider.on('grant.error', count((ctx, error) => {
    if (ctx.oidc.params?.grant_type === 'refresh_token') {
      stats.refreshRefused += 1;
      // The description of every invalid_grant is "grant request is invalid"; only the detail
      // tells a spent refresh token ("refresh token already used") from an unknown one.
      stats.refreshErrors.push(`${error.error}: ${error.error_detail ?? error.error_description}`);
    }
  }));
  provider.on('backchannel.success', count(() => { stats.backchannelSent += 1; }));
  provider.on('backchannel.error', count((_ctx, error) => {
    stats.backchannelFailed += 1;
    stats.backchannelErrors.push(String(error?.message ?? error));
  }));
  provider.on('authorization_code.saved', count(() => { stats.logins += 1; }));

  // Responses not yet sent, so that close() can wait for them.
  const underWay = new Set();
  let allDone = () => {};
  const handle = provider.callback();
  server.on('request', (req, res) => {
    underWay.add(res);
    res.on('close', () => {
      underWay.delete(res);
      if (underWay.size === 0) allDone();
    });
    if (req.url === '/_test/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(stats));
      return;
    }
    handle(req, res);
  });

  /**
   * Stops like a deployment: no new connections (idle kept-alive ones close), requests under
   * way get STOP_GRACE_MS to finish, whatever is left then is cut, and the state is written.
   */
  let closing = null;
  const close = async () => {
    const closed = new Promise((resolve) => server.close(resolve));
    const done = underWay.size === 0 ? null : new Promise((resolve) => { allDone = resolve; });
    let timer;
    await Promise.race([done, new Promise((resolve) => { timer = setTimeout(resolve, STOP_GRACE_MS); })]);
    clearTimeout(timer);
    // Connections still open now are idle (or over time): nothing else would close them.
    server.closeAllConnections();
    await closed;
    state.flush();
  };

  return {
    issuer,
    stats,
    close: () => {
      closing ??= close();
      return closing;
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.2' },
      port: { type: 'string', default: '0' },
      'client-json': { type: 'string' },
      'token-ttl': { type: 'string', default: '10' },
      state: { type: 'string' },
      'key-file': { type: 'string' },
    },
  });
  const op = await startOp({
    host: values.host,
    port: Number(values.port),
    client: JSON.parse(values['client-json']),
    tokenTtl: Number(values['token-ttl']),
    stateFile: values.state,
    keyFile: values['key-file'],
  });
  console.log(`op ready ${op.issuer}`);
  process.on('SIGTERM', () => op.close().then(() => process.exit(0)));
}
