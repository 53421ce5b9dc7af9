// The fault schedule: the provider stopped and restarted, the upstream killed and
// restarted, Redis paused and resumed, one at a time with quiet stretches between, laid out
// over the soak. Each fault has a window — from its start to GRACE seconds after its
// recovery — within which 5xx answers and broken connections are expected.
import { GRACE } from './policy.mjs';

/** What can fail, for how long (s), and how. */
const FAULTS = {
  op: { down: 20, what: 'provider stopped (SIGTERM, requests under way finish), restarted on the same port and state' },
  upstream: { down: 10, what: 'upstream killed (SIGKILL), restarted on the same port' },
  redis: { down: 10, what: 'Redis paused (SIGSTOP), then resumed (SIGCONT)' },
};
/** The order faults come in; as many as fit the soak's length are used. */
const SEQUENCE = ['op', 'upstream', 'redis', 'op', 'upstream', 'redis', 'op'];
/** Seconds without faults at least, between two windows, and before the first and after the last. */
const QUIET = 15;

/**
 * When each fault starts (s from the soak's start): after a warm-up in which every kind
 * of traffic has run, before a quiet tail that shows the recovery, spread evenly between.
 */
export function planFaults(duration) {
  const warmup = Math.max(QUIET, Math.min(40, duration * 0.1));
  const tail = warmup;
  const room = duration - warmup - tail;
  // Restarting takes about a second beyond the planned down time.
  const span = (kind) => FAULTS[kind].down + 1 + GRACE;
  let count = SEQUENCE.length;
  const needed = (n) => SEQUENCE.slice(0, n).reduce((sum, kind) => sum + span(kind), 0) + (n - 1) * QUIET;
  while (count > 0 && needed(count) > room) count -= 1;
  const kinds = SEQUENCE.slice(0, count);
  const gap = count > 1 ? (room - needed(count) + (count - 1) * QUIET) / (count - 1) : 0;
  const plan = [];
  let at = warmup;
  for (const kind of kinds) {
    plan.push({ kind, at: Math.round(at), down: FAULTS[kind].down, what: FAULTS[kind].what });
    at += span(kind) + gap;
  }
  return plan;
}

export function describePlan(plan) {
  return plan.map((f) => `  t=${String(f.at).padStart(4)} s  ${f.kind.padEnd(8)} down ${f.down} s: ${f.what}`).join('\n');
}

/**
 * Runs the plan against the stack, one fault after another; `windows` grows as faults
 * happen: {kind, start, recovered, end}.
 */
export class FaultRunner {
  constructor({ stack, plan, clock, log }) {
    Object.assign(this, { stack, plan, clock, log });
    this.windows = [];
  }

  async run() {
    for (const fault of this.plan) {
      await sleepUntil(this.clock, fault.at);
      const start = this.clock();
      this.log(`t=${start.toFixed(0)} s: ${fault.kind} fault begins`);
      await this.inflict(fault);
      const recovered = this.clock();
      this.windows.push({ kind: fault.kind, start: round(start), recovered: round(recovered), end: round(recovered + GRACE) });
      this.log(`t=${recovered.toFixed(0)} s: ${fault.kind} recovered`);
    }
  }

  async inflict({ kind, down }) {
    const { stack } = this;
    if (kind === 'op') {
      await stack.stopOp();
      await sleep(down);
      await stack.startOp();
    } else if (kind === 'upstream') {
      await stack.killUpstream();
      await sleep(down);
      await stack.startUpstream();
    } else {
      stack.pauseRedis();
      await sleep(down);
      stack.resumeRedis();
    }
  }

  /** The window that overlaps [start, end], if any. */
  covering(start, end = start) {
    return this.windows.find((w) => start <= w.end && end >= w.start);
  }
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));
const sleepUntil = (clock, at) => sleep(Math.max(0, at - clock()));
const round = (seconds) => Math.round(seconds * 10) / 10;
