// Soak with faults: virtual users log in, work, refresh, sign out, are logged out by the
// provider, hold WebSockets and upload files through the gateway for SOAK_SECONDS, while
// the provider, the upstream and Redis fail and recover on a schedule. Prints a report
// (also benches/soak/out/report.json) and exits 1 when a goal is missed.
//
// Environment: SOAK_SECONDS (600), SOAK_USERS (30), SOAK_SOCKET_SHARE (0.4: the share of
// sessions holding a WebSocket), SESSIONGATE_BIN (target/release/sessiongate).
// Everything runs on loopback: the gateway, upstream and Redis on 127.0.0.1, the provider
// on 127.0.0.2.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describePlan, FaultRunner, planFaults } from './faults.mjs';
import { Ledger } from './ledger.mjs';
import { GRACE } from './policy.mjs';
import { buildReport, printReport } from './report.mjs';
import { RssSampler } from './rss.mjs';
import { startStack } from './stack.mjs';
import { VirtualUser } from './user.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'out');
const seconds = Number(process.env.SOAK_SECONDS ?? 600);
const users = Number(process.env.SOAK_USERS ?? 30);
const socketShare = Number(process.env.SOAK_SOCKET_SHARE ?? 0.4);
const binary = process.env.SESSIONGATE_BIN ?? join(here, '..', '..', 'target', 'release', 'sessiongate');

mkdirSync(out, { recursive: true });
const began = performance.now();
/** Seconds since the soak began: every time in the ledger and the report is on this clock. */
const clock = () => (performance.now() - began) / 1000;
const log = (message) => console.log(`[soak] ${message}`);

const stack = await startStack({ binary, out, here });
log(`gateway ${stack.gatewayUrl} (admin ${stack.adminUrl}, pid ${stack.gatewayPid}), provider ${stack.issuer}; logs in ${out}`);

const plan = planFaults(seconds);
log(`${seconds} s, ${users} users; fault schedule (each window lasts until ${GRACE} s after recovery):\n${describePlan(plan)}`);

const ledger = new Ledger(stack.gatewayUrl);
const faults = new FaultRunner({ stack, plan, clock, log });
const rss = new RssSampler({ pid: stack.gatewayPid, clock });
rss.start();

const restarted = clock();
const crowd = Array.from({ length: users }, (_, i) => new VirtualUser({
  name: `soak-user-${String(i + 1).padStart(2, '0')}`,
  gatewayUrl: stack.gatewayUrl,
  issuer: stack.issuer,
  ledger,
  clock,
  until: restarted + seconds,
  withSocket: socketShare,
}));
const progress = setInterval(() => {
  const active = crowd.filter((u) => u.state === 'active').length;
  log(`t=${clock().toFixed(0)} s: ${active}/${users} signed in, ${ledger.counts.logins} logins, ${ledger.lost.length} lost, ${ledger.failures.length} failures so far`);
}, 60000);

// A user still in a request when the time is up gets a minute to finish, no more.
const everyone = Promise.all([faults.run(), ...crowd.map((u) => u.run())]);
const deadline = new Promise((resolve) => setTimeout(() => resolve('timeout'), (seconds + 60) * 1000).unref());
if ((await Promise.race([everyone, deadline])) === 'timeout') log('some users were still busy a minute after the end; reporting anyway');
clearInterval(progress);
rss.stop();

const metricsText = await stack.metrics().catch(() => '');
const shutdown = await stack.shutdown();
const report = buildReport({
  seconds, users, plan, faults, ledger, opStats: shutdown.opStats, rss, warmup: plan[0]?.at ?? 0, metricsText, shutdown,
});
writeFileSync(join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
printReport(report);
log(`report: ${join(out, 'report.json')}`);
process.exit(report.ok ? 0 : 1);
