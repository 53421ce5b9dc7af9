// What a virtual user's browser does, in plain HTTP/1.1: cookies kept per host (the
// gateway at 127.0.0.1 and the provider at 127.0.0.2 never see each other's), keep-alive
// connections of its own, redirects followed by hand so that every hop is seen and counted,
// and the HTML forms of the provider's pages read and posted.
import http from 'node:http';

/** Cookies of one browser: by host, then by name and path (RFC 6265 §5.3, host-only). */
export class CookieJar {
  #byHost = new Map();

  /** Takes the `Set-Cookie` headers of a response from `url`. */
  store(url, setCookies = []) {
    const cookies = this.#byHost.get(url.hostname) ?? new Map();
    this.#byHost.set(url.hostname, cookies);
    for (const header of setCookies) {
      const [pair, ...attributes] = header.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = url.pathname.slice(0, url.pathname.lastIndexOf('/')) || '/';
      let expiresAt = Infinity;
      for (const attribute of attributes) {
        const [key, ...rest] = attribute.split('=');
        const argument = rest.join('=').trim();
        switch (key.trim().toLowerCase()) {
          case 'path':
            if (argument.startsWith('/')) path = argument;
            break;
          case 'max-age':
            expiresAt = Date.now() + Number(argument) * 1000;
            break;
          case 'expires':
            // Max-Age wins over Expires when both are present.
            if (expiresAt === Infinity && !/max-age/i.test(header)) expiresAt = Date.parse(argument);
            break;
          default:
        }
      }
      const key = `${name}\n${path}`;
      if (expiresAt <= Date.now()) cookies.delete(key);
      else cookies.set(key, { name, value, path, expiresAt });
    }
  }

  /** The `Cookie` header for a request to `url`, or undefined. */
  header(url) {
    const cookies = this.#byHost.get(url.hostname);
    if (!cookies) return undefined;
    const now = Date.now();
    const matching = [];
    for (const [key, cookie] of cookies) {
      if (cookie.expiresAt <= now) {
        cookies.delete(key);
      } else if (pathMatches(url.pathname, cookie.path)) {
        matching.push(cookie);
      }
    }
    // Longer paths first, as browsers send them.
    matching.sort((a, b) => b.path.length - a.path.length);
    return matching.length ? matching.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
  }

  clear(hostname) {
    this.#byHost.delete(hostname);
  }
}

function pathMatches(requestPath, cookiePath) {
  return requestPath === cookiePath
    || (requestPath.startsWith(cookiePath) && (cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/'));
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const decode = (s) => s.replace(/&(#x?[0-9a-f]+|\w+);/gi, (whole, entity) => {
  if (entity[0] === '#') {
    const code = entity[1].toLowerCase() === 'x' ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10);
    return String.fromCodePoint(code);
  }
  return ENTITIES[entity.toLowerCase()] ?? whole;
});

const attribute = (tag, name) => {
  const match = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`, 'i').exec(tag);
  return match ? decode(match[1] ?? match[2]) : undefined;
};

/**
 * The first form of a page: its absolute action URL, its id, and its named inputs with their
 * values (hidden ones and empty text fields alike).
 */
export function parseForm(html, pageUrl) {
  const form = /<form\b[^>]*>/i.exec(html);
  if (!form) return null;
  const end = html.indexOf('</form>', form.index);
  const body = html.slice(form.index, end === -1 ? undefined : end);
  const fields = {};
  for (const [input] of body.matchAll(/<input\b[^>]*>/gi)) {
    const name = attribute(input, 'name');
    if (name) fields[name] = attribute(input, 'value') ?? '';
  }
  return {
    id: attribute(form[0], 'id'),
    action: new URL(attribute(form[0], 'action') ?? pageUrl.href, pageUrl),
    fields,
  };
}

/** The `error` field of a gateway's JSON error body, or its HTML title, for reports. */
function errorCode(text) {
  return /"error"\s*:\s*"([^"]+)"/.exec(text)?.[1] ?? /<title>([^<]*)<\/title>/i.exec(text)?.[1];
}

/** How long a request may take before the user gives up on it (an upload included). */
const REQUEST_TIMEOUT_MS = 60000;

/** Errors of a connection that the server closed under a request. */
const CLOSED_UNDER = new Set(['ECONNRESET', 'EPIPE']);

export class Browser {
  /**
   * `record(result)` is told about every request: {url, method, status | error, start, end,
   * code, user}, with times from `clock()` (seconds since the soak began); `resent(result)`
   * about every request sent again (see `request`).
   */
  constructor({ user, record, resent = () => {}, clock }) {
    this.jar = new CookieJar();
    Object.assign(this, { user, record, resent, clock });
    // Per host and port, as a browser pools its connections per origin.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 6 });
    // When each pooled connection went idle, to tell how long it had been when it failed.
    this.agent.on('free', (socket) => { socket.idleSince = this.clock(); });
  }

  /**
   * One request, as a browser makes it: when a kept-alive connection turns out to have been
   * closed by the server before any answer came, the request is sent once more on a new one
   * (browsers do this, and Node's documentation asks clients to). Not a streamed upload:
   * there a broken connection may as well be an early answer cut off (the gateway answering
   * 401 or 502 before the body is in), which is no reason to send it again. `body` is a
   * string, a Buffer, or a function `(request) => Promise` that writes the body and ends it.
   * Resolves with {status, headers, text, url} or {error}; never rejects.
   */
  async request(method, target, options = {}) {
    const first = await this.#attempt(method, new URL(target), options);
    if (!first.closedUnder || typeof options.body === 'function') return this.#recorded(first);
    this.resent(first);
    return this.#recorded(await this.#attempt(method, new URL(target), options));
  }

  #recorded(outcome) {
    this.record(outcome);
    return outcome;
  }

  #attempt(method, url, { headers = {}, body } = {}) {
    const start = this.clock();
    return new Promise((resolve) => {
      let settled = false;
      const finish = (result) => {
        if (settled) return;
        settled = true;
        resolve({ url, method, start, end: this.clock(), user: this.user, ...result });
      };
      const cookie = this.jar.header(url);
      const request = http.request(url, {
        method,
        agent: this.agent,
        headers: { ...headers, ...(cookie ? { cookie } : {}) },
        timeout: REQUEST_TIMEOUT_MS,
      });
      let answered = false;
      request.on('timeout', () => request.destroy(new Error('timeout')));
      request.on('error', (error) => {
        const code = error.code ?? error.message;
        const socket = request.socket;
        const idleFor = request.reusedSocket && socket?.idleSince !== undefined ? start - socket.idleSince : undefined;
        finish({
          error: code,
          reused: request.reusedSocket,
          idleFor: idleFor === undefined ? undefined : Math.round(idleFor * 100) / 100,
          closedUnder: request.reusedSocket && !answered && CLOSED_UNDER.has(code),
        });
      });
      request.on('response', (response) => {
        answered = true;
        this.jar.store(url, response.headers['set-cookie']);
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('error', (error) => finish({ error: error.code ?? error.message }));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          finish({
            status: response.statusCode,
            headers: response.headers,
            text,
            code: response.statusCode >= 400 ? errorCode(text) : undefined,
          });
          // A response that came before the body was sent (a 503 to an upload) ends it.
          if (!request.writableEnded) request.destroy();
        });
      });
      if (typeof body === 'function') {
        body(request).catch((error) => request.destroy(error));
      } else {
        request.end(body);
      }
    });
  }

  /**
   * Follows redirects from `target` by hand, as a browser navigating does: every hop is a
   * request of its own. Stops at a response that is not a redirect, at an error, or, with
   * `stopAt(url, hops)` true, before requesting a redirect's target. Returns the last response
   * with `hops` (every response on the way) and `next` (the URL it stopped before, if any).
   */
  async navigate(target, { method = 'GET', form, stopAt = () => false } = {}) {
    const hops = [];
    let url = new URL(target);
    let options = navigationOptions(method, form);
    for (let hop = 0; hop < 12; hop += 1) {
      const response = await this.request(options.method, url, options);
      hops.push(response);
      const location = response.headers?.location;
      if (response.error || ![301, 302, 303, 307, 308].includes(response.status) || !location) {
        return { ...response, hops };
      }
      const next = new URL(location, url);
      if (stopAt(next, hops)) return { ...response, hops, next };
      // 307/308 would repeat a POST; nothing here answers them to a POST.
      url = next;
      options = navigationOptions('GET');
    }
    return { error: 'too many redirects', url, hops };
  }
}

/** The headers of a top-level navigation (a link followed, or a form posted). */
function navigationOptions(method, form) {
  const headers = {
    accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8',
    'sec-fetch-mode': 'navigate',
    'sec-fetch-dest': 'document',
  };
  if (!form) return { method, headers };
  const body = new URLSearchParams(form).toString();
  return {
    method,
    headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
    body,
  };
}
