// The soak's verdict: what happened, by outcome, and the goals — each a count that must be
// zero (or, for memory, a rule) — with every offending event listed so it can be looked up
// in the logs.
import { ABSOLUTE, GRACE, IDLE, policyEnding, SLACK, TOKEN_TTL, TOUCH } from './policy.mjs';

const KINDS = ['page', 'api', 'public', 'upload', 'websocket', 'login', 'sign_out', 'endpoint', 'op'];
const COLUMNS = ['1xx', '2xx', '3xx', '4xx', '5xx', 'error'];

export const LOST_DEFINITION = `a session counts as lost when its user — signed in, not signed out and not logged out
    by the provider, whose last served request is less than idle_timeout - touch_interval - ${SLACK} s
    = ${IDLE - TOUCH - SLACK} s ago and whose login is less than absolute_timeout - ${SLACK} s = ${ABSOLUTE - SLACK} s ago — is
    sent to log in (302 to the provider) or gets 401, on a page, an XHR, an upload or a
    WebSocket handshake, or has a WebSocket closed by the gateway with 1008 "session ended";
    fault windows excuse nothing here (a 503 while Redis is paused is not a lost session)`;

/** Gateway log lines by level and message; panics apart. */
function readGatewayLog(text) {
  const levels = { WARN: {}, ERROR: {} };
  const panics = [];
  for (const line of text.split('\n')) {
    if (/panicked/.test(line)) panics.push(line.slice(0, 400));
    if (!line.startsWith('{')) continue;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    const bucket = levels[entry.level];
    if (!bucket) continue;
    const message = entry.fields?.message ?? entry.message ?? '?';
    const error = entry.fields?.error ? `: ${String(entry.fields.error).slice(0, 120)}` : '';
    const key = `${message}${error}`;
    bucket[key] = (bucket[key] ?? 0) + 1;
  }
  return { warnings: levels.WARN, errors: levels.ERROR, panics };
}

/** The gateway's own counters worth a look, from its /metrics text. */
function readMetrics(text) {
  const wanted = ['sessiongate_refreshes_total', 'sessiongate_sessions_ended_total', 'sessiongate_logins_total',
    'sessiongate_websockets_closed_total', 'sessiongate_session_store_errors_total', 'sessiongate_websockets_open'];
  const metrics = {};
  for (const line of text.split('\n')) {
    const match = /^(\w+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!match || !wanted.includes(match[1])) continue;
    metrics[match[1]] ??= {};
    metrics[match[1]][match[2]?.replace(/^\{|\}$/g, '') || 'value'] = Number(match[3]);
  }
  return metrics;
}

function group(list) {
  const counts = {};
  for (const item of list) counts[item] = (counts[item] ?? 0) + 1;
  return counts;
}

export function buildReport({ seconds, users, plan, faults, ledger, opStats, rss, warmup, metricsText, shutdown }) {
  const inWindow = (start, end) => faults.covering(start, end);
  const failures = ledger.failures.map((f) => ({
    ...f,
    window: inWindow(f.start, f.end)?.kind ?? null,
    // Whether the session had already ended by policy: what the answer should have been.
    session: f.session && { ...f.session, policy: policyEnding(f.session) },
  }));
  const outside = failures.filter((f) => !f.window);
  const insideByWindow = group(failures.filter((f) => f.window).map((f) => `${f.window}: ${f.kind} ${f.status}${f.code ? ` (${f.code})` : ''}`));
  // How long after each recovery failures still came: what the grace has to cover.
  const windows = faults.windows.map((w) => {
    const after = failures.filter((f) => f.window === w.kind && f.start <= w.end && f.end >= w.start && f.end > w.recovered);
    const lastEnd = Math.max(w.recovered, ...after.map((f) => f.end));
    return { ...w, failures: failures.filter((f) => f.start <= w.end && f.end >= w.start).length, settledAfter: Math.round((lastEnd - w.recovered) * 10) / 10 };
  });
  const outlived = ledger.outlived.map((o) => ({ ...o, window: inWindow(o.at - 1, o.at + 5)?.kind ?? null }));
  const refreshErrors = opStats.refreshErrors ?? [];
  // oidc-provider's words (the error's detail) for a rotated refresh token presented again.
  const spentTwice = refreshErrors.filter((e) => e === 'invalid_grant: refresh token already used');
  const log = readGatewayLog(shutdown.gatewayLog);
  const memory = rss.summary(warmup);
  const exitedCleanly = shutdown.gatewayExit.code === 0;

  const goals = {
    gatewayFailuresOutsideFaultWindows: {
      what: `gateway answers ≥ 500, broken connections to it, abnormal WebSocket closes and echoes that never came, outside every fault window (fault start to recovery + ${GRACE} s)`,
      count: outside.length,
      list: outside,
    },
    sessionsLost: { what: LOST_DEFINITION.replace(/\s+/g, ' '), count: ledger.lost.length, list: ledger.lost },
    refreshTokensSpentTwice: {
      what: 'refresh grants the provider refused because the token had already been used (rotation reuse)',
      count: spentTwice.length,
      list: spentTwice,
    },
    rssFlat: { what: memory.rule, count: memory.flat ? 0 : 1, first: memory.first, max: memory.max, last: memory.last, verdict: memory.verdict },
    wrongIdentity: { what: 'answers that named another user (or none) to a signed-in user', count: ledger.wrongIdentity.length, list: ledger.wrongIdentity },
    sessionsOutlivingPolicy: {
      what: 'sessions (or their WebSockets) still served after a sign-out, a back-channel logout or the idle/absolute timeout, outside fault windows',
      count: outlived.filter((o) => !o.window).length,
      list: outlived.filter((o) => !o.window),
      excusedByFaults: outlived.filter((o) => o.window),
    },
    gatewayHealthy: {
      what: 'no panic in the gateway log, and a clean exit (0) on SIGTERM at the end',
      count: log.panics.length + (exitedCleanly ? 0 : 1),
      panics: log.panics,
      exit: shutdown.gatewayExit,
    },
  };
  for (const goal of Object.values(goals)) goal.ok = goal.count === 0;

  return {
    run: {
      seconds, users, warmup, grace: GRACE,
      policy: { tokenTtl: TOKEN_TTL, idle: IDLE, absolute: ABSOLUTE, touch: TOUCH },
    },
    faults: { planned: plan, windows },
    requests: ledger.outcomes,
    failuresInsideFaultWindows: insideByWindow,
    goals,
    ok: Object.values(goals).every((g) => g.ok),
    counts: {
      ...ledger.counts,
      loginFailures: ledger.loginFailures,
      sessionsEnded: ledger.sessionEnds,
      unexpectedAnswers: ledger.unexpected,
      provider: {
        logins: opStats.logins,
        refreshGranted: opStats.refreshGranted,
        refreshRefused: opStats.refreshRefused,
        refreshErrors: group(refreshErrors),
        backchannelSent: opStats.backchannelSent,
        backchannelFailed: opStats.backchannelFailed,
        backchannelErrors: group(opStats.backchannelErrors ?? []),
      },
      websockets: ledger.sockets,
      resends: ledger.resends,
    },
    rss: memory,
    gatewayMetrics: readMetrics(metricsText),
    gatewayLog: { warnings: log.warnings, errors: log.errors },
  };
}

const pad = (value, width) => String(value).padStart(width);

function requestsTable(outcomes) {
  const kinds = [...KINDS.filter((k) => outcomes[k]), ...Object.keys(outcomes).filter((k) => !KINDS.includes(k))];
  const rows = [`  ${'kind'.padEnd(10)}${COLUMNS.map((c) => pad(c, 8)).join('')}${pad('total', 9)}`];
  const totals = Object.fromEntries(COLUMNS.map((c) => [c, 0]));
  for (const kind of kinds) {
    const row = outcomes[kind];
    const sum = Object.values(row).reduce((a, b) => a + b, 0);
    for (const c of COLUMNS) totals[c] += row[c] ?? 0;
    rows.push(`  ${kind.padEnd(10)}${COLUMNS.map((c) => pad(row[c] ?? '-', 8)).join('')}${pad(sum, 9)}`);
  }
  const all = Object.values(totals).reduce((a, b) => a + b, 0);
  rows.push(`  ${'all'.padEnd(10)}${COLUMNS.map((c) => pad(totals[c], 8)).join('')}${pad(all, 9)}`);
  return rows.join('\n');
}

const listed = (items, format, max = 20) => items.slice(0, max).map((i) => `      - ${format(i)}`).join('\n')
  + (items.length > max ? `\n      ... and ${items.length - max} more (report.json)` : '');

/** A failure with what the user knew: where the session stood, and on what connection. */
function describeFailure(f) {
  const session = f.session
    ? `session age ${f.session.age} s, idle ${f.session.idleFor} s${f.session.policy ? `: past its ${f.session.policy} timeout` : ''}`
    : 'no session';
  const connection = f.connection ? `; ${f.connection} connection` : '';
  return `t=${f.start.toFixed(1)}s ${f.user ?? ''} ${f.method} ${f.path} → ${f.status}${f.code ? ` (${f.code})` : ''} (${session}${connection})`;
}

const entries = (object) => Object.entries(object).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || '-';

export function printReport(report) {
  const { goals, counts } = report;
  const t = (s) => `t=${Number(s).toFixed(1)}s`;
  const mark = (goal) => (goal.ok ? 'ok  ' : 'FAIL');
  const lines = [];
  lines.push('', `== Soak with faults: ${report.run.seconds} s, ${report.run.users} virtual users ==`);
  lines.push(`policy: tokens ${report.run.policy.tokenTtl} s, idle ${report.run.policy.idle} s, absolute ${report.run.policy.absolute} s, touch ${report.run.policy.touch} s; Redis store`);
  lines.push('fault windows (start → recovered, window ends recovered + grace):');
  for (const w of report.faults.windows) {
    lines.push(`  ${w.kind.padEnd(9)} ${t(w.start)} → ${t(w.recovered)}  (window to ${t(w.end)}): ${w.failures} failures, the last ${w.settledAfter} s after recovery`);
  }
  lines.push('', 'requests by outcome (status class × kind; "error" = no HTTP answer):', requestsTable(report.requests));
  lines.push('', `inside fault windows (expected): ${entries(report.failuresInsideFaultWindows)}`);

  lines.push('', 'goals:');
  lines.push(`  [${mark(goals.gatewayFailuresOutsideFaultWindows)}] 5xx/broken outside fault windows: ${goals.gatewayFailuresOutsideFaultWindows.count} (goal 0)`);
  if (goals.gatewayFailuresOutsideFaultWindows.count) {
    lines.push(listed(goals.gatewayFailuresOutsideFaultWindows.list, describeFailure));
  }
  lines.push(`  [${mark(goals.sessionsLost)}] sessions lost other than by policy: ${goals.sessionsLost.count} (goal 0)`);
  lines.push(`      (${LOST_DEFINITION})`);
  if (goals.sessionsLost.count) {
    lines.push(listed(goals.sessionsLost.list, (l) => `${t(l.at)} ${l.user}: ${l.via}; session age ${l.age} s, idle ${l.idleFor} s`));
  }
  lines.push(`  [${mark(goals.refreshTokensSpentTwice)}] refresh tokens spent twice (provider's count): ${goals.refreshTokensSpentTwice.count} (goal 0)`);
  const r = goals.rssFlat;
  lines.push(`  [${mark(r)}] gateway RSS: first ${r.first?.mb} MB (t=${r.first?.t}s), max ${r.max?.mb} MB (t=${r.max?.t}s), last ${r.last?.mb} MB (t=${r.last?.t}s): ${r.verdict}`);
  lines.push(`      (${r.what})`);
  lines.push(`  [${mark(goals.wrongIdentity)}] served as someone else: ${goals.wrongIdentity.count} (goal 0)`);
  if (goals.wrongIdentity.count) lines.push(listed(goals.wrongIdentity.list, (w) => `${t(w.at)} ${w.user} got ${w.servedAs} at ${w.path}`));
  lines.push(`  [${mark(goals.sessionsOutlivingPolicy)}] sessions outliving a logout or timeout: ${goals.sessionsOutlivingPolicy.count} (goal 0; ${goals.sessionsOutlivingPolicy.excusedByFaults.length} more inside fault windows)`);
  if (goals.sessionsOutlivingPolicy.count) lines.push(listed(goals.sessionsOutlivingPolicy.list, (o) => `${t(o.at)} ${o.user}: ${o.what}`));
  lines.push(`  [${mark(goals.gatewayHealthy)}] gateway panics: ${goals.gatewayHealthy.panics.length}; exit on SIGTERM: ${goals.gatewayHealthy.exit.signal ?? goals.gatewayHealthy.exit.code}`);

  const p = counts.provider;
  lines.push('', 'counts:');
  lines.push(`  logins ${counts.logins} (provider: ${p.logins} codes issued); failed login attempts ${counts.loginAttemptsFailed}: ${entries(counts.loginFailures)}`);
  lines.push(`  sign-outs ${counts.signOuts} (provider's logout page not reached: ${counts.signOutsAtOpFailed})`);
  lines.push(`  back-channel logouts ${counts.backchannelLogouts} (provider sent ${p.backchannelSent}, failed ${p.backchannelFailed}${p.backchannelFailed ? `: ${entries(p.backchannelErrors)}` : ''}; provider unreachable for ${counts.backchannelAtOpFailed})`);
  lines.push(`  refresh grants: ${p.refreshGranted} granted, ${p.refreshRefused} refused${p.refreshRefused ? ` (${entries(p.refreshErrors)})` : ''}`);
  lines.push(`  sessions ended: ${entries(counts.sessionsEnded)}`);
  const ws = counts.websockets;
  lines.push(`  WebSockets: ${ws.opened} opened, ${ws.handshakeRefused} handshakes refused, ${ws.messages} echoes; closed: ${entries(ws.closed)}`);
  const idle = counts.resends.map((r) => r.idleFor).filter((v) => v !== undefined);
  const range = idle.length ? ` (connections idle ${Math.min(...idle)}–${Math.max(...idle)} s)` : '';
  lines.push(`  requests resent because the gateway had closed their kept-alive connection: ${counts.resends.length}${range}`);
  lines.push(`  uploads: ${counts.uploads} completed, ${(counts.uploadBytes / 1024 / 1024).toFixed(0)} MiB through the gateway`);
  if (counts.unexpectedAnswers.length) {
    lines.push(`  unexpected answers: ${counts.unexpectedAnswers.length}`, listed(counts.unexpectedAnswers, (u) => `${t(u.at)} ${u.user}: ${u.what}`, 10));
  }
  lines.push('', `gateway RSS every 10 s (MB): ${report.rss.samples.map((s) => s.mb).join(' ')}`);
  const m = report.gatewayMetrics;
  const metric = (name) => entries(Object.fromEntries(Object.entries(m[name] ?? {}).map(([k, v]) => [k.replace(/^\w+="|"$/g, ''), v])));
  lines.push('', "gateway's own counters (/metrics):");
  lines.push(`  refreshes: ${metric('sessiongate_refreshes_total')}`);
  lines.push(`  sessions ended: ${metric('sessiongate_sessions_ended_total')}`);
  lines.push(`  logins: ${metric('sessiongate_logins_total')}`);
  lines.push(`  WebSockets closed: ${metric('sessiongate_websockets_closed_total')}`);
  lines.push(`  store errors: ${metric('sessiongate_session_store_errors_total')}`);
  lines.push(`gateway log: warnings ${entries(report.gatewayLog.warnings)}`);
  if (Object.keys(report.gatewayLog.errors).length) lines.push(`gateway log: errors ${entries(report.gatewayLog.errors)}`);
  lines.push('', report.ok ? 'soak: every goal met' : `soak: goals missed: ${Object.entries(goals).filter(([, g]) => !g.ok).map(([k]) => k).join(', ')}`);
  console.log(lines.join('\n'));
}
