// The identity provider of the end-to-end suite: `oidc-provider` (OpenID Certified), with its
// own development login and consent pages, one confidential client for the gateway, short
// token lifetimes, refresh tokens that rotate on every use, RP-initiated and back-channel
// logout. Besides the provider it answers GET /_test/stats: how many refresh grants it
// served and refused, and how many back-channel logouts it sent, so tests can see what the
// gateway did at the provider without trusting the gateway's word for it.
//
// As a module: `await startOp({ host, port, client, tokenTtl })`. As a program:
// `node op.mjs --host 127.0.0.2 --port 4181 --client-json '{...}' [--state FILE]`; with
// --state it keeps its grants, sessions and tokens in that file, so a restarted provider
// still honours the refresh tokens it issued (the soak script restarts it).
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync, existsSync } from 'node:fs';
import http from 'node:http';
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

/**
 * A storage adapter for oidc-provider: everything in one Map, optionally mirrored to a JSON
 * file after each change, so that the provider's state outlives the process.
 */
function storage(stateFile) {
  const records = new Map();
  if (stateFile && existsSync(stateFile)) {
    for (const [key, value] of Object.entries(JSON.parse(readFileSync(stateFile, 'utf8')))) {
      records.set(key, value);
    }
  }
  let pending = null;
  const persist = () => {
    if (!stateFile || pending) return;
    // Coalesced: a burst of upserts costs one write.
    pending = setImmediate(() => {
      pending = null;
      writeFileSync(`${stateFile}.tmp`, JSON.stringify(Object.fromEntries(records)));
      renameSync(`${stateFile}.tmp`, stateFile);
    });
  };
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
export async function startOp({ host = '127.0.0.2', port = 0, client, tokenTtl = 10, stateFile }) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e-rs256', use: 'sig', alg: 'RS256' };

  const server = http.createServer();
  await new Promise((resolve) => server.listen(port, host, resolve));
  const issuer = `http://${host}:${server.address().port}`;

  const provider = new Provider(issuer, {
    adapter: storage(stateFile),
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
    jwks: { keys: [signingKey] },
    ttl: {
      AccessToken: tokenTtl,
      IdToken: tokenTtl,
      RefreshToken: 24 * 3600,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 24 * 3600,
    },
  });

  const stats = { refreshGranted: 0, refreshRefused: 0, refreshErrors: [], backchannelSent: 0, backchannelFailed: 0, backchannelErrors: [], logins: 0 };
  provider.on('grant.success', (ctx) => {
    if (ctx.oidc.params.grant_type === 'refresh_token') stats.refreshGranted += 1;
  });
  provider.on('grant.error', (ctx, error) => {
    if (ctx.oidc.params?.grant_type === 'refresh_token') {
      stats.refreshRefused += 1;
      stats.refreshErrors.push(`${error.error}: ${error.error_description}`);
    }
  });
  provider.on('backchannel.success', () => { stats.backchannelSent += 1; });
  provider.on('backchannel.error', (_ctx, error) => {
    stats.backchannelFailed += 1;
    stats.backchannelErrors.push(String(error?.message ?? error));
  });
  provider.on('authorization_code.saved', () => { stats.logins += 1; });

  const handle = provider.callback();
  server.on('request', (req, res) => {
    if (req.url === '/_test/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(stats));
      return;
    }
    handle(req, res);
  });

  return {
    issuer,
    stats,
    close: () => new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.2' },
      port: { type: 'string', default: '0' },
      'client-json': { type: 'string' },
      'token-ttl': { type: 'string', default: '10' },
      state: { type: 'string' },
    },
  });
  const op = await startOp({
    host: values.host,
    port: Number(values.port),
    client: JSON.parse(values['client-json']),
    tokenTtl: Number(values['token-ttl']),
    stateFile: values.state,
  });
  console.log(`op ready ${op.issuer}`);
  process.on('SIGTERM', () => op.close().then(() => process.exit(0)));
}
