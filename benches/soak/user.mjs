// One virtual user: logs in through the provider's form, works for a while (pages with
// their XHRs, API calls, uploads, and sometimes a WebSocket held open), then leaves the
// session one of four ways — signs out, is logged out by the provider (back-channel), goes
// idle, or works on until the absolute timeout — and logs in again.
//
// Every answer is judged on the spot against what the user has a right to expect: served
// as themselves while the session lives, sent to log in (or 401) once it has ended by policy
// or by their own hand, and never sent to log in otherwise — that is a lost session.
import WebSocket from 'ws';

import { Browser, parseForm } from './browser.mjs';
import { ABSOLUTE, IDLE, policyEnding } from './policy.mjs';

const between = (low, high) => low + Math.random() * (high - low);
const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

function pick(weighted) {
  let roll = Math.random() * weighted.reduce((sum, [, weight]) => sum + weight, 0);
  for (const [value, weight] of weighted) {
    roll -= weight;
    if (roll < 0) return value;
  }
  return weighted[0][0];
}

/**
 * How sessions end, and how often each way is chosen: methods of VirtualUser, except
 * workToAbsolute, which is no action at all — the user works until the gateway ends it.
 */
const ENDINGS = [['signOut', 30], ['backchannelLogout', 25], ['goIdle', 25], ['workToAbsolute', 20]];
/** What a working user does next. */
const ACTIONS = [['page', 50], ['api', 35], ['upload', 15]];
/** Seconds a user waits between two actions. */
const THINK = [0.5, 3];
/** Sessions that end by choice (not the absolute timeout) last this long (s). */
const WORK = [20, 90];
/** A socket is sent a message this often (s), and an echo later than STALL (s) is a stall. */
const SOCKET_TICK = 5;
const STALL = 10;
/** After a logout the gateway has this long (s) to close the session's WebSocket. */
const SOCKET_END = 2;
/** While the answer is a fault (5xx, no connection), a check is retried for this long (s). */
const PERSIST = 40;

const XHR = { accept: 'application/json', 'x-requested-with': 'XMLHttpRequest', 'sec-fetch-mode': 'cors' };
const CHUNK = Buffer.alloc(64 * 1024, 'soak');

/** Until `request` can take more, or is gone. */
function writable(request) {
  return new Promise((resolve) => {
    const done = () => {
      request.off('drain', done);
      request.off('close', done);
      resolve();
    };
    request.on('drain', done);
    request.on('close', done);
  });
}

/** Writes `size` bytes into `request` as fast as it takes them, then ends it. */
async function streamBody(request, size) {
  for (let left = size; left > 0 && !request.destroyed; left -= CHUNK.length) {
    const chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
    if (!request.write(chunk)) await writable(request);
  }
  if (!request.destroyed) request.end();
}

function userIn(response) {
  const text = response.text ?? '';
  const html = /data-user="([^"]*)"/.exec(text);
  if (html) return html[1];
  try {
    return JSON.parse(text).user;
  } catch {
    return undefined;
  }
}

export class VirtualUser {
  /**
   * `name` is also the login at the provider; `until` is when to stop (soak seconds);
   * `withSocket` is the share of sessions that hold a WebSocket open.
   */
  constructor({ name, gatewayUrl, issuer, ledger, clock, until, withSocket }) {
    Object.assign(this, { name, ledger, clock, until, withSocket });
    this.gateway = new URL(gatewayUrl);
    this.op = new URL(issuer);
    this.browser = new Browser({
      user: name,
      clock,
      // With where the session stood, so that a failure can be told from a policy ending.
      record: (result) => ledger.request({ ...result, session: this.sessionClocks(result.start) }),
      resent: (result) => ledger.resent(result),
    });
    /** anonymous | active | signingOut | backchannel | idle | done */
    this.state = 'anonymous';
    this.session = null;
    this.socket = null;
  }

  /** The session's age and idle time at `at` (s), while there is one. */
  sessionClocks(at) {
    if (!this.session) return null;
    return { age: round(at - this.session.start), idleFor: round(at - this.lastServed) };
  }

  url(path) {
    return new URL(path, this.gateway);
  }

  atOp = (url) => url.origin === this.op.origin;

  atGateway = (url) => url.origin === this.gateway.origin;

  async run() {
    // Not all at once: logins spread over the first seconds, as people arrive.
    await sleep(between(0, 10));
    while (this.clock() < this.until) {
      if (await this.logIn()) {
        await this.workSession();
      } else {
        await sleep(between(2, 4));
      }
    }
    if (this.session) this.endSession('soak over');
    this.state = 'done';
  }

  // ---- logging in ---------------------------------------------------------------------

  /** Logs in from a protected page, through the provider's pages; true when signed in. */
  async logIn() {
    this.state = 'anonymous';
    // Back at the provider after the callback: the new session did not hold.
    const stopAt = (next, hops) => this.atOp(next) && hops.some((hop) => this.isCallback(hop));
    let response = await this.browser.navigate(this.url('/app/home'), { stopAt });
    for (let page = 0; page < 6; page += 1) {
      const callback = response.hops.find((hop) => this.isCallback(hop));
      if (callback) return this.signedIn(callback, response);
      if (response.error) {
        this.ledger.loginFailed(`${this.atOp(response.url) ? 'provider' : 'gateway'} unreachable (${response.error})`);
        return false;
      }
      if (this.atGateway(response.url)) {
        // Already signed in: a sign-out that never reached the gateway.
        if (response.status === 200) return this.signedIn(null, response);
        this.ledger.loginFailed(`gateway ${response.status} ${response.code ?? ''}`.trim());
        return false;
      }
      const form = response.status === 200 ? parseForm(response.text, response.url) : null;
      if (!form) {
        this.ledger.loginFailed(`provider ${response.status} without a form`);
        return false;
      }
      const fields = { ...form.fields };
      if (fields.prompt === 'login') Object.assign(fields, { login: this.name, password: 'soak' });
      response = await this.browser.navigate(form.action, { method: 'POST', form: fields, stopAt });
    }
    this.ledger.loginFailed('too many provider pages');
    return false;
  }

  /** The gateway's callback, answered with the way back to the application: logged in. */
  isCallback(hop) {
    return this.atGateway(hop.url) && hop.url.pathname === '/oauth2/callback' && hop.status === 302
      && !this.atOp(new URL(hop.headers.location, hop.url));
  }

  /**
   * Signed in, by `callback` (a new session, created when the callback was served) or from
   * before. `landing` is the page the login ended on: the session stands even if that page
   * failed (the upstream down, say), but not if it sent the user to log in again.
   */
  signedIn(callback, landing) {
    if (callback) {
      this.session = { start: callback.start };
      this.ledger.count('logins');
    } else if (!this.session) {
      this.session = { start: landing.start };
    }
    this.state = 'active';
    this.lastServed = callback?.start ?? landing.start;
    if (this.judge(landing) !== 'served' && this.state !== 'active') return false;
    if (Math.random() < this.withSocket) this.openSocket();
    return true;
  }

  // ---- working --------------------------------------------------------------------------

  async workSession() {
    let ending = pick(ENDINGS);
    let workFor = between(...WORK);
    while (this.state === 'active' && this.clock() < this.until) {
      const age = this.clock() - this.session.start;
      if (ending !== 'workToAbsolute' && age >= workFor) {
        // Going idle takes IDLE + 5 s: not when the soak ends before that.
        if (ending === 'goIdle' && this.clock() + IDLE + 10 > this.until) ending = 'signOut';
        await this[ending]();
        if (this.state !== 'active') return;
        // The ending did not happen (the provider was down): work on, try again later.
        ending = pick(ENDINGS.filter(([name]) => name !== 'workToAbsolute'));
        workFor = age + between(10, 20);
      } else if (ending === 'workToAbsolute' && age > ABSOLUTE + 15) {
        // The absolute timeout should have ended this session by now.
        this.ledger.outlived.push({ user: this.name, at: this.clock(), what: 'absolute timeout', age });
        await this.signOut();
        return;
      }
      await this[pick(ACTIONS)]();
      if (this.state === 'active') await sleep(between(...THINK));
    }
  }

  /** A page, then its stylesheet and two XHRs at once, as a page load does. */
  async page() {
    const page = await this.browser.navigate(this.url(`/app/page/${Math.floor(between(1, 50))}`), { stopAt: this.atOp });
    if (this.judge(page) !== 'served') return;
    const [, ...calls] = await Promise.all([
      this.browser.request('GET', this.url('/static/app.css'), { headers: { accept: 'text/css' } }),
      this.browser.request('GET', this.url('/api/items'), { headers: XHR }),
      this.browser.request('GET', this.url('/api/user'), { headers: XHR }),
    ]);
    for (const call of calls) this.judge(call);
  }

  async api() {
    const calls = Math.floor(between(1, 4));
    for (let i = 0; i < calls && this.state === 'active'; i += 1) {
      this.judge(await this.browser.request('GET', this.url(`/api/data/${i}`), { headers: XHR }));
    }
  }

  /** 1–8 MB, streamed as an XHR upload does (not a form: a lapsed session gets 401). */
  async upload() {
    const size = Math.floor(between(1, 8.999)) * 1024 * 1024;
    const response = await this.browser.request('POST', this.url('/upload'), {
      headers: { ...XHR, 'content-type': 'application/octet-stream', 'content-length': size },
      body: (request) => streamBody(request, size),
    });
    if (this.judge(response) !== 'served') return;
    const { bytes } = JSON.parse(response.text);
    if (bytes !== size) {
      this.ledger.unexpected.push({ user: this.name, at: response.start, what: `upload of ${size} bytes arrived with ${bytes}` });
    }
    this.ledger.count('uploads');
    this.ledger.count('uploadBytes', bytes);
  }

  /**
   * What an answer to a protected request means: `served` (as this user), `ended` (sent to
   * log in, or 401: the session is over, by policy or lost), `fault` (5xx, no connection:
   * the session may be fine) or `other`.
   */
  judge(response) {
    if (response.error || response.status >= 500) return 'fault';
    if (response.status >= 200 && response.status < 300) {
      this.checkIdentity(response);
      if (this.state === 'active') this.lastServed = response.start;
      return 'served';
    }
    const toLogin = response.status === 302 && response.next && this.atOp(response.next);
    if (toLogin || response.status === 401) {
      this.sessionOver(response);
      return 'ended';
    }
    this.ledger.unexpected.push({ user: this.name, at: response.start, what: `${response.method} ${response.url.pathname}: ${response.status} ${response.code ?? ''}` });
    return 'other';
  }

  checkIdentity(response) {
    const user = userIn(response);
    if (user !== this.name) {
      this.ledger.wrongIdentity.push({ user: this.name, at: response.start, path: response.url.pathname, servedAs: user ?? null });
    }
  }

  /** The gateway says the session is gone while this user was working: by policy, or lost. */
  sessionOver(response) {
    if (this.state !== 'active') return;
    const age = response.end - this.session.start;
    const idleFor = response.end - this.lastServed;
    const policy = policyEnding({ age, idleFor });
    if (!policy) {
      this.ledger.lost.push({
        user: this.name, at: response.start, via: `${response.method} ${response.url.pathname} → ${response.status}`,
        age: round(age), idleFor: round(idleFor),
      });
    }
    this.endSession(policy ?? 'lost');
  }

  endSession(how) {
    this.ledger.sessionEnded(how);
    this.session = null;
    this.state = 'anonymous';
    this.closeSocket();
  }

  // ---- ending a session -------------------------------------------------------------------

  /** /oauth2/sign_out, then the provider's logout page (RP-initiated logout), confirmed. */
  async signOut() {
    this.state = 'signingOut';
    const at = this.clock();
    const out = await this.browser.navigate(this.url('/oauth2/sign_out?rd=%2F'), { stopAt: this.atOp });
    if (out.error) {
      // It never reached the gateway: still signed in.
      this.state = 'active';
      return;
    }
    // Signed out as far as this browser goes: the gateway clears the cookie whatever else
    // happens (a 503 while Redis is paused included).
    this.ledger.count('signOuts');
    this.ledger.sessionEnded('signed out');
    this.session = null;
    if (out.status === 302 && out.next && this.atOp(out.next)) {
      const { landed } = await this.confirmLogoutAtOp(out.next);
      if (!landed) this.ledger.count('signOutsAtOpFailed');
      else if (this.atGateway(landed)) await this.expectLoggedOut(landed, 'sign-out', at);
    }
    // The gateway closes the session's sockets as it signs out; let it, and check it did.
    if (!(await this.socketEnds(SOCKET_END))) {
      this.ledger.outlived.push({ user: this.name, at, what: 'WebSocket open after sign-out' });
    }
    this.closeSocket();
  }

  /** Signs out at the provider itself, which tells the gateway by back-channel logout. */
  async backchannelLogout() {
    this.state = 'backchannel';
    const at = this.clock();
    const { landed, hadSession } = await this.confirmLogoutAtOp(new URL('/session/end', this.op));
    if (!landed || !hadSession) {
      // The provider was down (or had no session to end): nothing was sent; work on.
      this.ledger.count('backchannelAtOpFailed');
      this.state = 'active';
      return;
    }
    this.ledger.count('backchannelLogouts');
    this.ledger.sessionEnded('back-channel logout');
    this.session = null;
    // The provider waits for the gateway's answer before it answers: the session is gone.
    await this.expectLoggedOut(this.url('/app/after-logout'), 'back-channel logout', at);
    if (!(await this.socketEnds(SOCKET_END))) {
      this.ledger.outlived.push({ user: this.name, at, what: 'WebSocket open after back-channel logout' });
    }
    this.closeSocket();
  }

  /**
   * The provider's logout page at `url`, confirmed with "Yes, sign me out". Returns where
   * the provider sent the browser then (the gateway, or its own "signed out" page; null when
   * it could not be reached), and whether it had a session of this user to end.
   */
  async confirmLogoutAtOp(url) {
    const page = await this.browser.navigate(url, { stopAt: this.atGateway });
    const form = page.status === 200 ? parseForm(page.text, page.url) : null;
    if (!form) return { landed: null };
    // Without a session the provider answers with a self-posting form instead.
    const hadSession = form.id === 'op.logoutForm';
    const fields = { ...form.fields, ...(hadSession ? { logout: 'yes' } : {}) };
    const done = await this.browser.navigate(form.action, { method: 'POST', form: fields, stopAt: this.atGateway });
    return { landed: done.next ?? (done.status === 200 ? done.url : null), hadSession };
  }

  /** After a logout, a page of the gateway must send the user to log in. */
  async expectLoggedOut(url, what, since = this.clock()) {
    const response = await this.persist(() => this.browser.navigate(url, { stopAt: this.atOp }));
    if (response.status === 302 && response.next && this.atOp(response.next)) return;
    if (response.status >= 200 && response.status < 300) {
      this.ledger.outlived.push({ user: this.name, at: since, what, answer: response.status });
      this.forgetGatewayCookies();
    }
  }

  /** After a session outlived its end: start afresh, as a user clearing cookies would. */
  forgetGatewayCookies() {
    this.browser.jar.clear(this.gateway.hostname);
  }

  /** Stops every request, waits past the idle timeout, and expects to be sent to log in. */
  async goIdle() {
    this.state = 'idle';
    const since = this.lastServed;
    await sleep(IDLE + 5);
    // The gateway's sweep closes the sockets of an idle session within a second or so.
    if (this.socket?.ws.readyState === WebSocket.OPEN) {
      this.ledger.outlived.push({ user: this.name, at: this.clock(), what: 'WebSocket open past the idle timeout' });
    }
    const response = await this.persist(() => this.browser.navigate(this.url('/app/back'), { stopAt: this.atOp }));
    if (response.status === 302 && response.next && this.atOp(response.next)) {
      this.endSession('idle');
    } else if (response.status >= 200 && response.status < 300) {
      this.ledger.outlived.push({ user: this.name, at: since, what: 'idle timeout', answer: response.status });
      this.forgetGatewayCookies();
      this.endSession('outlived idle');
    } else {
      this.endSession('idle (unverified)');
    }
  }

  /** Repeats `attempt` while it meets a fault, for up to PERSIST seconds. */
  async persist(attempt) {
    const giveUp = this.clock() + PERSIST;
    for (;;) {
      const response = await attempt();
      if (!(response.error || response.status >= 500) || this.clock() > giveUp) return response;
      await sleep(2);
    }
  }

  // ---- the WebSocket ------------------------------------------------------------------------

  openSocket() {
    if (this.socket || this.state !== 'active') return;
    const url = this.url('/ws');
    url.protocol = 'ws:';
    const start = this.clock();
    const cookie = this.browser.jar.header(this.url('/ws'));
    const ws = new WebSocket(url, { headers: cookie ? { cookie } : {}, origin: this.gateway.origin, handshakeTimeout: 30000 });
    const socket = { ws, closing: false, answered: false, opened: false, pending: null, timer: null, session: this.session };
    socket.closed = new Promise((resolve) => { socket.onClosed = resolve; });
    this.socket = socket;
    const handshake = (status, error) => ({
      url: new URL('/ws', this.gateway), method: 'GET', start, end: this.clock(), status, error,
      user: this.name, session: this.sessionClocks(start),
    });

    ws.on('upgrade', () => {
      socket.answered = true;
      this.ledger.request(handshake(101));
    });
    ws.on('unexpected-response', (_request, response) => {
      socket.answered = true;
      response.resume();
      const result = handshake(response.statusCode);
      this.ledger.request(result);
      this.ledger.sockets.handshakeRefused += 1;
      this.judge(result);
      ws.terminate();
    });
    ws.on('error', (error) => {
      // No answer at all to the handshake; after one, 'close' tells what happened.
      if (!socket.answered) this.ledger.request(handshake(undefined, error.code ?? error.message));
    });
    ws.on('open', () => {
      socket.opened = true;
      this.ledger.sockets.opened += 1;
      socket.timer = setInterval(() => this.tickSocket(socket), SOCKET_TICK * 1000);
    });
    ws.on('message', (data) => {
      const message = JSON.parse(data.toString());
      if ('hello' in message) {
        if (message.hello !== this.name) {
          this.ledger.wrongIdentity.push({ user: this.name, at: this.clock(), path: '/ws', servedAs: message.hello });
        }
      } else {
        socket.pending = null;
        this.ledger.sockets.messages += 1;
      }
    });
    ws.on('close', (code, reason) => {
      socket.onClosed();
      clearInterval(socket.timer);
      if (this.socket === socket) this.socket = null;
      if (socket.opened) this.socketClosed(socket, code, reason.toString());
      // A handshake that failed is tried again while the session lives.
      else if (!socket.closing && this.state === 'active') this.reopenSocketLater();
    });
  }

  tickSocket(socket) {
    const now = this.clock();
    if (socket.pending && now - socket.pending > STALL) this.ledger.socketStalled({ user: this.name, start: socket.pending, end: now });
    if (socket.ws.readyState !== WebSocket.OPEN) return;
    if (!socket.pending || now - socket.pending > STALL) socket.pending = now;
    socket.ws.send(JSON.stringify({ user: this.name, at: now }));
  }

  /** Why a socket closed, and whether that was all right. */
  socketClosed(socket, code, reason) {
    const now = this.clock();
    if (socket.closing) {
      this.ledger.socketClosed('closed by the user');
      return;
    }
    if (code === 1008) {
      // The gateway ended the session's sockets: it considers the session over.
      const ownSession = socket.session === this.session && this.state === 'active';
      const policy = ownSession
        ? policyEnding({ age: now - this.session.start, idleFor: now - this.lastServed })
        : 'ended';
      if (policy) {
        this.ledger.socketClosed(`ended with its session (${reason || code})`);
      } else {
        this.ledger.socketClosed('ended while its session should live');
        this.ledger.lost.push({
          user: this.name, at: now, via: `WebSocket closed ${code} ${reason}`,
          age: round(now - this.session.start), idleFor: round(now - this.lastServed),
        });
        this.endSession('lost');
      }
      return;
    }
    this.ledger.socketClosed('broken', { start: now, end: now, path: '/ws', status: `close ${code}` });
    if (this.state === 'active') this.reopenSocketLater();
  }

  /** Whether the WebSocket, if there is one, is closed within `seconds`. */
  socketEnds(seconds) {
    const socket = this.socket;
    if (!socket) return true;
    return Promise.race([socket.closed.then(() => true), sleep(seconds).then(() => false)]);
  }

  reopenSocketLater() {
    setTimeout(() => {
      if (this.state === 'active' && this.clock() < this.until) this.openSocket();
    }, 3000);
  }

  closeSocket() {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    socket.closing = true;
    clearInterval(socket.timer);
    if (socket.ws.readyState === WebSocket.OPEN) socket.ws.close(1000, 'bye');
    else socket.ws.terminate();
  }
}

const round = (seconds) => Math.round(seconds * 10) / 10;
