// The product as its users meet it: a real browser, a certified OpenID Provider's own pages,
// the gateway binary from this tree, and a legacy application behind it. Timings come from
// harness.mjs (tokens live TOKEN_TTL seconds, sessions IDLE and ABSOLUTE seconds).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  ABSOLUTE, IDLE, TOKEN_TTL, WARN_BEFORE, atOp, loginAtOp, opStats, screenshot, shownIdentity, sleep, startStack,
} from './harness.mjs';

let stack;
before(async () => { stack = await startStack(); });
after(async () => { await stack?.stop(); });

/** The browser asks the page's own origin, as the application's scripts would. */
async function xhr(page, path) {
  return page.evaluate(async (target) => {
    const response = await fetch(target, { credentials: 'same-origin' });
    return { status: response.status, type: response.headers.get('content-type') ?? '', body: await response.text() };
  }, path);
}

/** Forget the provider's own session cookies, so the next login shows its form again. */
async function forgetOpSession(context) {
  await context.clearCookies({ domain: new URL(stack.op.issuer).hostname });
}

async function signedIn(context, user, path) {
  const page = await context.newPage();
  await page.goto(`${stack.gatewayUrl}${path}`);
  assert.ok(atOp(page, stack.op), `expected the provider's login page, got ${page.url()}`);
  await loginAtOp(page, user);
  assert.equal(page.url(), `${stack.gatewayUrl}${path}`);
  assert.equal((await shownIdentity(page))['x-forwarded-user'], user);
  return page;
}

test('login through the provider lands on the deep link with the identity headers, spoofed ones stripped', async () => {
  const context = await stack.newContext();
  // The application must never see identity headers the client made up.
  await context.setExtraHTTPHeaders({ 'X-Forwarded-User': 'mallory', 'X-Forwarded-Groups': 'admins' });
  const page = await context.newPage();
  await page.goto(`${stack.gatewayUrl}/reports/2026?quarter=3&view=full`);
  assert.ok(atOp(page, stack.op), page.url());
  await loginAtOp(page, 'alice', '01-provider-login');
  assert.equal(page.url(), `${stack.gatewayUrl}/reports/2026?quarter=3&view=full`);
  assert.deepEqual(await shownIdentity(page), {
    'x-forwarded-user': 'alice',
    'x-forwarded-email': 'alice@example.com',
    'x-forwarded-preferred-username': 'alice',
    'x-forwarded-groups': 'staff,team-alice',
  });
  await screenshot(page, '02-deep-link-with-identity');
  await context.close();
});

test('two tabs logging in at once both land where they started', async () => {
  const context = await stack.newContext();
  const [first, second] = await Promise.all([context.newPage(), context.newPage()]);
  await Promise.all([
    first.goto(`${stack.gatewayUrl}/tab/one`),
    second.goto(`${stack.gatewayUrl}/tab/two?x=2`),
  ]);
  assert.ok(atOp(first, stack.op) && atOp(second, stack.op));
  await loginAtOp(first, 'bob');
  await loginAtOp(second, 'bob');
  assert.equal(first.url(), `${stack.gatewayUrl}/tab/one`);
  assert.equal(second.url(), `${stack.gatewayUrl}/tab/two?x=2`);
  for (const page of [first, second]) {
    await page.reload();
    assert.equal((await shownIdentity(page))['x-forwarded-user'], 'bob');
  }
  await context.close();
});

test('an active user stays signed in across token lifetimes (refresh grants), until the absolute timeout', async () => {
  const context = await stack.newContext();
  const authorizations = [];
  context.on('request', (request) => {
    if (request.url().startsWith(`${stack.op.issuer}/auth`)) authorizations.push(Date.now());
  });
  const before = await opStats(stack.op);
  const page = await signedIn(context, 'carol', '/work');
  const loggedIn = Date.now();
  authorizations.length = 0;

  // Busy for three and a half token lifetimes, one page load every two seconds.
  while (Date.now() - loggedIn < 3.5 * TOKEN_TTL * 1000) {
    await sleep(2000);
    await page.reload();
    assert.ok(!atOp(page, stack.op), `sent to log in while active, at ${(Date.now() - loggedIn) / 1000}s`);
    assert.equal((await shownIdentity(page))['x-forwarded-user'], 'carol');
  }
  const during = await opStats(stack.op);
  assert.ok(during.refreshGranted - before.refreshGranted >= 2,
    `the provider saw ${during.refreshGranted - before.refreshGranted} refresh grants`);
  assert.equal(during.refreshRefused, before.refreshRefused, during.refreshErrors.join('; '));
  assert.equal(authorizations.length, 0);
  await screenshot(page, '03-active-across-token-lifetimes');

  // Still busy, right up to and past the absolute deadline: then it must end all the same.
  await forgetOpSession(context);
  while (Date.now() - loggedIn < (ABSOLUTE + 2) * 1000) {
    await sleep(2000);
    await page.goto(`${stack.gatewayUrl}/work`);
    if (atOp(page, stack.op)) break;
    assert.equal((await shownIdentity(page))['x-forwarded-user'], 'carol');
  }
  assert.ok(atOp(page, stack.op), 'the session outlived the absolute timeout');
  const ended = (Date.now() - loggedIn) / 1000;
  assert.ok(ended >= ABSOLUTE - 2, `ended after ${ended}s, before the absolute timeout`);
  await page.waitForSelector('input[name="login"]');
  await screenshot(page, '04-absolute-timeout-login-again');
  await context.close();
});

test('idle past the idle timeout: XHR gets 401 JSON, the next page load logs in again', async () => {
  const context = await stack.newContext();
  const page = await signedIn(context, 'dave', '/orders');
  const fresh = await xhr(page, '/api/whoami');
  assert.equal(fresh.status, 200);
  assert.equal(JSON.parse(fresh.body).user, 'dave');

  await sleep((IDLE + 2) * 1000);
  for (const path of ['/api/whoami', '/orders/42']) {
    const expired = await xhr(page, path);
    assert.equal(expired.status, 401, `${path}: ${expired.status} ${expired.body}`);
    assert.match(expired.type, /^application\/json/, path);
    assert.equal(typeof JSON.parse(expired.body), 'object');
  }

  await forgetOpSession(context);
  await page.reload();
  assert.ok(atOp(page, stack.op), page.url());
  await loginAtOp(page, 'dave', '05-idle-timeout-login-again');
  assert.equal(page.url(), `${stack.gatewayUrl}/orders`);
  assert.equal((await shownIdentity(page))['x-forwarded-user'], 'dave');
  await context.close();
});

test('the expiry notice appears before the idle deadline and "Stay signed in" extends the session', async () => {
  const context = await stack.newContext();
  const page = await signedIn(context, 'erin', '/dashboard');
  const loggedIn = Date.now();
  const notice = page.locator('#sessiongate-notice');
  await notice.waitFor({ timeout: IDLE * 1000 });
  const shownAt = (Date.now() - loggedIn) / 1000;
  assert.ok(shownAt >= IDLE - WARN_BEFORE - 1 && shownAt < IDLE, `notice after ${shownAt}s`);
  await screenshot(page, '06-expiry-notice');
  await notice.getByRole('button', { name: 'Stay signed in' }).click();
  await notice.waitFor({ state: 'detached' });

  // Past the deadline the login set: without the click this is scenario "idle" (401).
  await sleep(Math.max(0, loggedIn + (IDLE + 1) * 1000 - Date.now()));
  const after = await xhr(page, '/api/whoami');
  assert.equal(after.status, 200, after.body);
  assert.equal(JSON.parse(after.body).user, 'erin');
  await context.close();
});

test('a form filled in before the idle timeout is posted after logging in again, once', async () => {
  const context = await stack.newContext();
  const page = await signedIn(context, 'frank', '/form');
  const notes = 'Half an hour of typing.\nSecond line, ünïcødé & <angle> brackets.';
  await page.fill('#customer', 'ACME Ltd');
  await page.fill('#notes', notes);
  await screenshot(page, '07-form-filled');
  await sleep((IDLE + 2) * 1000);

  await forgetOpSession(context);
  const postsBefore = (await upstreamReceived()).filter(isFormPost).length;
  await page.click('#save');
  await page.waitForLoadState('load');
  assert.ok(atOp(page, stack.op), `the expired post was not sent to log in: ${page.url()}`);
  await loginAtOp(page, 'frank', '08-form-post-login-again');
  await page.waitForSelector('#saved');
  assert.equal(await page.textContent('[data-field="customer"]'), 'ACME Ltd');
  assert.equal(await page.textContent('[data-field="notes"]'), notes);
  assert.equal((await shownIdentity(page))['x-forwarded-user'], 'frank');
  await screenshot(page, '09-form-post-delivered');

  const posts = (await upstreamReceived()).filter(isFormPost).slice(postsBefore);
  assert.equal(posts.length, 1, JSON.stringify(posts));
  assert.equal(posts[0].user, 'frank');
  assert.equal(posts[0].contentType, 'application/x-www-form-urlencoded');
  const fields = new URLSearchParams(posts[0].body);
  assert.equal(fields.get('customer'), 'ACME Ltd');
  // Browsers send a textarea's line breaks as CRLF; the same bytes must arrive.
  assert.equal(fields.get('notes'), notes.replace(/\n/g, '\r\n'));
  await context.close();
});

test('without JavaScript the kept form post goes on by its "Continue" button', async () => {
  const context = await stack.newContext({ javaScriptEnabled: false });
  const page = await signedIn(context, 'ivan', '/form');
  await page.fill('#customer', 'No Script GmbH');
  await page.fill('#notes', 'typed with scripts off');
  await sleep((IDLE + 2) * 1000);

  await forgetOpSession(context);
  const postsBefore = (await upstreamReceived()).filter(isFormPost).length;
  await page.click('#save');
  await page.waitForLoadState('load');
  await loginAtOp(page, 'ivan');
  const proceed = page.getByRole('button', { name: 'Continue' });
  await proceed.waitFor();
  await screenshot(page, '10-form-post-continue-without-javascript');
  assert.equal((await upstreamReceived()).filter(isFormPost).length, postsBefore, 'posted before Continue');
  await proceed.click();
  await page.waitForSelector('#saved');
  assert.equal(await page.textContent('[data-field="customer"]'), 'No Script GmbH');
  const posts = (await upstreamReceived()).filter(isFormPost).slice(postsBefore);
  assert.equal(posts.length, 1, JSON.stringify(posts));
  assert.equal(posts[0].user, 'ivan');

  // Going back and pressing Continue again must not post the kept form a second time.
  await page.goBack();
  if (await proceed.count()) {
    await proceed.click();
    await page.waitForLoadState('load');
  }
  assert.equal((await upstreamReceived()).filter(isFormPost).length, postsBefore + 1);
  await context.close();
});

test('sign-out with RP-initiated logout ends the provider session too', async () => {
  const context = await stack.newContext();
  const page = await signedIn(context, 'grace', '/home');
  await page.click('a[href="/oauth2/sign_out"]');
  assert.ok(atOp(page, stack.op), page.url());
  await page.waitForSelector('button[name="logout"]');
  await screenshot(page, '11-provider-sign-out');
  await page.click('button[name="logout"]');
  await page.waitForLoadState('load');
  // Back at the gateway, which has no session, which sends to the provider, which has none
  // either: its login form, not a silent login.
  await page.waitForSelector('input[name="login"]');
  assert.ok(atOp(page, stack.op), page.url());
  const cookies = await context.cookies(stack.gatewayUrl);
  assert.ok(!cookies.some((c) => c.name === 'sessiongate'), JSON.stringify(cookies.map((c) => c.name)));
  await context.close();
});

test('a back-channel logout sent by the provider ends the session in the browser', async () => {
  const context = await stack.newContext();
  const page = await signedIn(context, 'heidi', '/inbox');
  const before = await opStats(stack.op);

  // The user signs out at the provider itself (another application's sign-out, say).
  const elsewhere = await context.newPage();
  await elsewhere.goto(`${stack.op.issuer}/session/end`);
  await elsewhere.click('button[name="logout"]');
  await elsewhere.waitForLoadState('load');
  for (let i = 0; i < 50 && (await opStats(stack.op)).backchannelSent === before.backchannelSent; i++) await sleep(100);
  const after = await opStats(stack.op);
  assert.equal(after.backchannelSent, before.backchannelSent + 1);
  assert.equal(after.backchannelFailed, before.backchannelFailed);

  // The gateway's cookie is still in the browser, and nothing but the logout token ended it.
  assert.ok((await context.cookies(stack.gatewayUrl)).some((c) => c.name === 'sessiongate'));
  const api = await xhr(page, '/api/whoami');
  assert.equal(api.status, 401, api.body);
  await page.reload();
  await page.waitForSelector('input[name="login"]');
  assert.ok(atOp(page, stack.op), page.url());
  await screenshot(page, '12-after-back-channel-logout');
  await context.close();
});

async function upstreamReceived() {
  return (await fetch(`${stack.upstream.url}/_test/received`)).json();
}

function isFormPost(request) {
  return request.method === 'POST' && request.url === '/form/submit';
}
