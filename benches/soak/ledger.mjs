// Everything the soak saw, kept as it happens and judged at the end, once the fault windows
// are known: counts by outcome, and the individual events that a goal is about (each with
// its time, so the report can say whether a fault window covers it).

/** What a request was, from the user's point of view, by where it went. */
export function routeKind(url, gatewayOrigin) {
  if (url.origin !== gatewayOrigin) return 'op';
  const path = url.pathname;
  if (path === '/oauth2/callback' || path === '/oauth2/start') return 'login';
  if (path === '/oauth2/sign_out') return 'sign_out';
  if (path.startsWith('/oauth2/')) return 'endpoint';
  if (path.startsWith('/static/')) return 'public';
  if (path.startsWith('/api/')) return 'api';
  if (path === '/upload') return 'upload';
  if (path === '/ws') return 'websocket';
  return 'page';
}

export const statusClass = (status) => `${String(status)[0]}xx`;

export class Ledger {
  constructor(gatewayOrigin) {
    this.gatewayOrigin = gatewayOrigin;
    /** kind -> status class (or 'error') -> count */
    this.outcomes = {};
    /** Gateway answers ≥ 500 and broken connections to the gateway: judged against the fault windows. */
    this.failures = [];
    /** Sessions that ended while they should have lived. */
    this.lost = [];
    /** Sessions that lived on past a sign-out, a back-channel logout or a deadline. */
    this.outlived = [];
    /** Responses that named another user than the one who asked. */
    this.wrongIdentity = [];
    /** Answers no user action expects (a 400 or 409, say), for the curious. */
    this.unexpected = [];
    /** Sessions, by how they ended. */
    this.sessionEnds = {};
    this.counts = { logins: 0, loginAttemptsFailed: 0, signOuts: 0, signOutsAtOpFailed: 0, backchannelLogouts: 0, backchannelAtOpFailed: 0, uploads: 0, uploadBytes: 0 };
    this.loginFailures = {};
    /** Requests resent on a new connection (see Browser.request). */
    this.resends = [];
    this.sockets = { opened: 0, handshakeRefused: 0, messages: 0, stalls: [], closed: {} };
  }

  /** One request's result (see Browser), with the user's session clocks when signed in. */
  request({ url, method, status, error, start, end, code, user, session, reused, idleFor }) {
    const kind = routeKind(url, this.gatewayOrigin);
    const column = error ? 'error' : statusClass(status);
    this.outcomes[kind] ??= {};
    this.outcomes[kind][column] = (this.outcomes[kind][column] ?? 0) + 1;
    if (kind !== 'op' && (error || status >= 500)) {
      this.failures.push({
        start, end, kind, method, path: url.pathname, status: error ?? status, code, user,
        session: session ?? undefined,
        connection: reused ? `kept-alive, idle ${idleFor} s` : (error ? 'new' : undefined),
      });
    }
  }

  /** A request sent again because the server had closed its kept-alive connection under it. */
  resent({ url, start, idleFor, error }) {
    this.resends.push({ at: start, path: url.pathname, idleFor, error });
  }

  count(name, n = 1) {
    this.counts[name] += n;
  }

  sessionEnded(how) {
    this.sessionEnds[how] = (this.sessionEnds[how] ?? 0) + 1;
  }

  loginFailed(reason) {
    this.counts.loginAttemptsFailed += 1;
    this.loginFailures[reason] = (this.loginFailures[reason] ?? 0) + 1;
  }

  /** A message on an open socket got no echo within the stall time. */
  socketStalled({ user, start, end }) {
    this.sockets.stalls.push({ user, at: start });
    this.failures.push({ start, end, kind: 'websocket', method: 'WS', path: '/ws', status: 'no echo' });
  }

  socketClosed(category, event) {
    this.sockets.closed[category] = (this.sockets.closed[category] ?? 0) + 1;
    // Abnormal closes are failures unless a fault explains them; the report decides.
    if (category === 'broken') this.failures.push({ ...event, kind: 'websocket', method: 'WS' });
  }
}
