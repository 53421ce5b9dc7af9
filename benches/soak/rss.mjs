// The gateway's resident memory over the soak, read from /proc/<pid>/status (VmRSS) every
// 10 s. A leak under a steady mix shows as a last sample well above the first.
import { readFileSync } from 'node:fs';

export const EVERY = 10;
/** The verdict's rule: flat when the last sample is at most this many MB above the first. */
export const FLAT_MB = 10;

function rssMb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]);
  return Math.round((kb / 1024) * 10) / 10;
}

export class RssSampler {
  constructor({ pid, clock }) {
    Object.assign(this, { pid, clock });
    this.samples = [];
  }

  start() {
    const sample = () => {
      try {
        this.samples.push({ t: Math.round(this.clock()), mb: rssMb(this.pid) });
      } catch {
        // The gateway is gone: the report says so from its exit status.
      }
    };
    sample();
    this.timer = setInterval(sample, EVERY * 1000);
  }

  stop() {
    clearInterval(this.timer);
  }

  /**
   * first/max/last and the verdict. The first sample counted is the one at the end of the
   * warm-up (`from` s): before it, connection pools and caches fill up, which is not growth.
   */
  summary(from) {
    const counted = this.samples.filter((s) => s.t >= from);
    if (counted.length === 0) return { samples: this.samples, verdict: 'no samples', flat: false };
    const first = counted[0];
    const last = counted[counted.length - 1];
    const max = counted.reduce((a, b) => (b.mb > a.mb ? b : a));
    const flat = last.mb <= first.mb + FLAT_MB;
    return {
      rule: `flat when the last sample ≤ the first (at the end of the warm-up, t=${first.t} s) + ${FLAT_MB} MB`,
      first, max, last, flat,
      verdict: flat ? 'flat' : 'growing',
      samples: this.samples,
    };
  }
}
